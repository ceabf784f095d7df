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

from ._tracemap import FieldRef, StageRule, TraceMapping

__all__ = ["PRESETS", "RESTATE_START_RESOLUTION_NS", "preset"]

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
