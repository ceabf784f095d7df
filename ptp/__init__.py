"""PTPv2 (IEEE 1588-2008) messages and a measure-only software-timestamping slave."""

__all__: list[str] = []
