"""Per-request latencies and mergeable percentile sketches on Dask (extra
``clocksync[dask]``: ``dask[dataframe]``, ``distributed``)::

    import dask.dataframe as dd
    from clocksync.latency.dask import dask_latencies, dask_sketch

    hops = dask_latencies(dd.read_parquet("events/"), tables)   # lazy dask frame
    sketch = dask_sketch(hops, accuracy=0.01, all_pairs=True)   # QuantileSketch
    print(sketch.percentiles())                                  # guaranteed [low, high]

Each end of a sketch interval lies at most one bucket (a factor ``(1+α)/(1-α)``) outside
the exact interval of one process. ``clocksync latency --scheduler`` runs the same path.
"""

from ._dask import dask_hop_counts, dask_latencies, dask_sketch, latencies_of_partition

__all__ = ["dask_hop_counts", "dask_latencies", "dask_sketch", "latencies_of_partition"]
