"""Reliability suite: faults to survive, hostile and malformed input (docs/reliability.md)."""
