"""The bottom layer: records and their rules, importing nothing else of clocksync.

Samples (:mod:`._sample`, :mod:`._samples`), correction tables and their cells
(:mod:`._table`, :mod:`._cells`) with their versioned, validated JSON form and HMAC signing
(:mod:`._tablekey`), flag bits and status values as enums (:mod:`._flags`, :mod:`._status`),
the guarantee's assumptions (:mod:`._assumptions`), clocks (:mod:`._clock`), kernel stamp
kinds (:mod:`._stamps`), units (:mod:`._units`) and the exception tree (:mod:`._errors`).
The public names are exported by :mod:`clocksync`.
"""

__all__: list[str] = []
