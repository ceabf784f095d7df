"""Built-in trace maps for systems whose span shapes are known (``--preset NAME``).

``restate``: Restate 1.7's spans (scope ``services``). The node is the part of the resource
attribute ``service.instance.id`` (``"<cluster>/<node>"``) after the last ``/``; the stage is
the span name's first word (``ingress``, ``invocation-start``, ``invocation-attempt``,
``invocation-end``); hops pair each span with its parent span, so the cross-node hops are
``ingress->invocation-start`` (when the partition leader is another node) and a caller's
``invocation-attempt->invocation-start`` (the callee's); the request id is the child span's
``restate.invocation.id`` (the trace id when a span has none).

``invocation-start`` is stamped with the invocation's creation time, read from a coarse
clock: its true time lies in ``[t, t + RESTATE_START_RESOLUTION_NS)`` (docs/latency.md says
how that was measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util

from ._tracemap import FieldRef, StageRule, TraceMapping

__all__ = ["PRESETS", "RESTATE_START_RESOLUTION_NS", "coarse_tick_ns", "preset",
           "resolution_warning"]

#: Resolution of Restate's ``invocation-start`` stamp (ns).
RESTATE_START_RESOLUTION_NS = 5_000_000


def _restate() -> TraceMapping:
    def rule(stage: str, resolution_ns: int | None = None) -> StageRule:
        return StageRule(stage, name_regex=f"^{stage}( |$)", resolution_ns=resolution_ns)

    return TraceMapping(
        rules=(rule("ingress"), rule("invocation-start", RESTATE_START_RESOLUTION_NS),
               rule("invocation-attempt"), rule("invocation-end")),
        node_keys=(FieldRef(attribute="service.instance.id", scope="resource",
                            regex="([^/]+)$"),),
        request_id_keys=("restate.invocation.id",),
        context_keys=("restate.invocation.target",),
        pair_by="parent",
    )


#: Preset name -> its trace map.
PRESETS: dict[str, TraceMapping] = {"restate": _restate()}


def preset(name: str) -> TraceMapping:
    """The built-in trace map ``name``; :class:`ValueError` naming the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})") \
            from None


_CLOCK_REALTIME_COARSE = 5  # Linux


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def coarse_tick_ns() -> int | None:
    """This host's ``CLOCK_REALTIME_COARSE`` resolution (ns; the kernel tick), or ``None``
    where it cannot be read (not Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        res = _Timespec()
        if libc.clock_getres(_CLOCK_REALTIME_COARSE, ctypes.byref(res)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(res.tv_sec) * 1_000_000_000 + int(res.tv_nsec)


def resolution_warning(name: str) -> str | None:
    """A warning when preset ``name`` assumes a coarse clock finer than this host's (the
    coarse tick plus 1 ms of millisecond truncation), else ``None``."""
    if name != "restate":
        return None
    tick = coarse_tick_ns()
    if tick is None or tick + 1_000_000 <= RESTATE_START_RESOLUTION_NS:
        return None
    return (f"the restate preset assumes invocation-start stamps within "
            f"{RESTATE_START_RESOLUTION_NS / 1e6:g} ms of the truth, but this host's coarse "
            f"clock ticks every {tick / 1e6:g} ms (+1 ms truncation): if the Restate nodes "
            f"run a kernel like this one, use a trace map with resolution_ns = "
            f"{tick + 1_000_000} for invocation-start")
