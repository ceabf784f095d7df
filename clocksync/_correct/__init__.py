"""Pure correction math: a table's cells compiled for lookup, evaluated in one operation
order for scalars, gathered arrays and sorted runs (:mod:`._cells`), and the stacked cells
of many nodes the latency pipeline evaluates in one pass (:mod:`._cellstack`). Imports only
the model layer; :class:`clocksync.Corrector` is built on it."""

__all__: list[str] = []
