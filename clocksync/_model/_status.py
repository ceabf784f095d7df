"""The status of a node's clock model, and the publisher block of a table: plain records.

:class:`Status` is the one set of status values; its members' meanings are in
:data:`STATUS_MEANINGS` (and ``docs/table-format.md``). :class:`PublisherBlock` is the
``publisher`` object an agent writes into every table it publishes (``docs/table-format.md``):
what a reader needs to judge whether the publisher is still alive. Both import nothing of
clocksync but its errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._errors import SchemaError

__all__ = [
    "FREE_RUNNING_POLLS",
    "REPUBLISH_S",
    "STATUSES",
    "STATUS_MEANINGS",
    "PublisherBlock",
    "Status",
]

#: a table with no sample for this many poll intervals is free-running (ClockBound's rule)
FREE_RUNNING_POLLS = 8
#: an agent republishes its table at least this often (s), also when nothing changed
REPUBLISH_S = 60.0


class Status(StrEnum):
    """A node's clock model status (ClockBound's states, plus three of the agent's)."""

    UNKNOWN = "unknown"
    SYNCHRONISED = "synchronised"
    FREE_RUNNING = "free_running"
    DISRUPTED = "disrupted"
    SERVING = "serving"
    STOPPED = "stopped"


#: what each status means, for docs, ``--help`` and tests
STATUS_MEANINGS: dict[Status, str] = {
    Status.UNKNOWN: "no table yet: no sample has been fitted",
    Status.SYNCHRONISED: "fresh samples agree with the model; the bound is the model's",
    Status.FREE_RUNNING: f"no fresh sample for {FREE_RUNNING_POLLS} poll intervals, every "
                         "source unreachable, or the publisher stopped republishing: the "
                         "bound keeps widening from the holdover model",
    Status.DISRUPTED: "the newest samples disagree with the model (an unconfirmed step), or "
                      "a confirmed step started a segment that is still young",
    Status.SERVING: "a reference agent: it measures nothing and serves its own clock",
    Status.STOPPED: "the agent shut down; this is its final table, the bound keeps "
                    "widening from the holdover model",
}

#: the status values, in declaration order
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)


@dataclass(frozen=True, slots=True)
class PublisherBlock:
    """The ``publisher`` object of a table an agent published (``docs/table-format.md``).

    Attributes:
        poll_interval_s: the agent's current poll interval (s, > 0); a reader applies the
            free-running rule (:data:`FREE_RUNNING_POLLS` × this) to it.
        republish_s: the agent republishes at least this often (s, > 0), also unchanged.
        sources: the agent's source names (``ntp:HOST:PORT``, ``ptp:IFACE``, ...).
        sources_agree: whether the fresh samples of all sources overlap; ``None`` with
            fewer than two fresh sources.
        falsetickers: sources outside the interval a strict majority agrees on.
    """

    poll_interval_s: float
    republish_s: float = REPUBLISH_S
    sources: tuple[str, ...] = ()
    sources_agree: bool | None = None
    falsetickers: tuple[str, ...] = ()

    def stale_after_s(self) -> float:
        """A table not republished for this long (s) comes from an agent that stopped."""
        return FREE_RUNNING_POLLS * self.poll_interval_s + 2 * self.republish_s

    def to_dict(self) -> dict[str, Any]:
        return {"poll_interval_s": self.poll_interval_s, "republish_s": self.republish_s,
                "sources": list(self.sources), "sources_agree": self.sources_agree,
                "falsetickers": list(self.falsetickers)}

    @classmethod
    def from_dict(cls, obj: Any, source: str = "table",
                  path: str = "publisher") -> PublisherBlock:
        """Validate and build; :class:`SchemaError` names ``source`` and the bad field."""

        def fail(key: str, why: str) -> SchemaError:
            return SchemaError(f"{source}: field '{path}.{key}': {why}" if key
                               else f"{source}: field '{path}': {why}")

        if not isinstance(obj, dict):
            raise fail("", "must be an object")

        def seconds(key: str, required: bool) -> float:
            if key not in obj:
                if required:
                    raise fail(key, "missing")
                return REPUBLISH_S
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(key, f"must be a number, got {value!r}")
            try:
                number = float(value)
            except OverflowError:
                raise fail(key, f"must be finite, got {value!r}") from None
            if not math.isfinite(number) or number <= 0:
                raise fail(key, f"must be a finite number > 0, got {value!r}")
            return number

        def names(key: str) -> tuple[str, ...]:
            value = obj.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(key, f"must be a list of strings, got {value!r}")
            return tuple(value)

        agree = obj.get("sources_agree")
        if agree is not None and not isinstance(agree, bool):
            raise fail("sources_agree", f"must be true, false or null, got {agree!r}")
        return cls(poll_interval_s=seconds("poll_interval_s", True),
                   republish_s=seconds("republish_s", False),
                   sources=names("sources"), sources_agree=agree,
                   falsetickers=names("falsetickers"))
