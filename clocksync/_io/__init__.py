"""The I/O layer: row files (JSONL, CSV, Parquet) and sample files, atomic writes, table key
files and the table stores (directory, memory, Redis, agents over HTTP). Imports the model
layer only; the public names are exported by :mod:`clocksync`."""

__all__: list[str] = []
