"""``CorrectionTable``: one node's fitted clock model, as versioned JSON.

The schema (``"schema": "clocksync.table/1"``) is documented field by field in
``docs/table-format.md``. Two things live side by side and are labelled as such:

* ``segments[].fit`` — the **statistical estimate**: a robust weighted line (offset, skew)
  through the segment's recent samples, with 1σ errors;
* ``cells`` — the **guaranteed bound model**: contiguous local-time cells, each with a linear
  upper and lower envelope of the true offset, valid under ``assumptions``.

Loading validates every field and names the first bad one; a newer schema is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._cells import Cells
from ._errors import SchemaError
from ._flags import AMBIGUOUS, HOLDOVER, VOID
from ._status import STATUSES, PublisherBlock
from ._tablekey import TableKey, sign_table, verify_table

__all__ = ["SCHEMA", "STATUSES", "CorrectionTable", "LineEstimate", "SegmentInfo"]

SCHEMA = "clocksync.table/1"
_SCHEMA_PREFIX = "clocksync.table/"
_VERSION = 1
_STARTS = ("start", "step", "level_shift", "unconfirmed")
#: largest |envelope value| a cell may hold (ns, ~31.7 years): beyond it int64 correction
#: arithmetic would overflow, and no clock error worth correcting is that large
MAX_ENVELOPE_NS = 1e18
_INT64_MAX = (1 << 63) - 1
_CELL_FLOATS = ("hi0_ns", "hi1_ns_per_s", "lo0_ns", "lo1_ns_per_s", "slope_lo_ns_per_s",
                "slope_hi_ns_per_s")


@dataclass(frozen=True, slots=True)
class LineEstimate:
    """Statistical estimate: ``offset(t) ≈ offset_ns - skew_ppm·1e3·(t - anchor)/1e9``.

    ``skew_ppm > 0`` means the local clock runs fast (its offset decreases).
    """

    anchor_local_ns: int
    offset_ns: float
    skew_ppm: float
    sigma_offset_ns: float
    sigma_skew_ppm: float
    residual_rms_ns: float
    samples_used: int
    window_start_local_ns: int

    def offset_at(self, t_local_ns: int) -> float:
        return self.offset_ns - self.skew_ppm * 1e3 * (t_local_ns - self.anchor_local_ns) / 1e9


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A stretch of local time without clock steps."""

    index: int
    started_by: str
    first_sample_local_ns: int
    last_sample_local_ns: int
    sample_count: int
    fit: LineEstimate


@dataclass(frozen=True)
class CorrectionTable:
    """A node's correction table (see module docstring and docs/table-format.md)."""

    node: str
    reference: str
    generated_at_ns: int
    status: str
    assumptions: dict[str, float]
    sample_count: int
    outlier_count: int
    segments: tuple[SegmentInfo, ...]
    cells: Cells
    generation: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: written by an agent that published the table (None: fitted offline)
    publisher: PublisherBlock | None = None

    @property
    def last_sample_local_ns(self) -> int | None:
        return self.segments[-1].last_sample_local_ns if self.segments else None

    @property
    def current(self) -> LineEstimate | None:
        """The statistical estimate of the newest segment (what a skew report shows)."""
        return self.segments[-1].fit if self.segments else None

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        c = self.cells
        void = (c.flags & VOID) != 0

        def clean(values: np.ndarray) -> list[float]:
            return [0.0 if v else float(x) for x, v in zip(values, void, strict=True)]

        return {
            "schema": SCHEMA,
            "node": self.node,
            "reference": self.reference,
            "generated_at_ns": self.generated_at_ns,
            "generation": self.generation,
            "status": self.status,
            "assumptions": dict(self.assumptions),
            "sample_count": self.sample_count,
            "outlier_count": self.outlier_count,
            "segments": [
                {
                    "index": s.index,
                    "started_by": s.started_by,
                    "first_sample_local_ns": s.first_sample_local_ns,
                    "last_sample_local_ns": s.last_sample_local_ns,
                    "sample_count": s.sample_count,
                    "fit": {
                        "anchor_local_ns": s.fit.anchor_local_ns,
                        "offset_ns": s.fit.offset_ns,
                        "skew_ppm": s.fit.skew_ppm,
                        "sigma_offset_ns": _finite_or_none(s.fit.sigma_offset_ns),
                        "sigma_skew_ppm": _finite_or_none(s.fit.sigma_skew_ppm),
                        "residual_rms_ns": s.fit.residual_rms_ns,
                        "samples_used": s.fit.samples_used,
                        "window_start_local_ns": s.fit.window_start_local_ns,
                    },
                }
                for s in self.segments
            ],
            "cells": {
                "start_local_ns": c.start_ns.tolist(),
                "end_local_ns": c.end_ns.tolist(),
                "hi0_ns": clean(c.hi0),
                "hi1_ns_per_s": clean(c.hi1),
                "lo0_ns": clean(c.lo0),
                "lo1_ns_per_s": clean(c.lo1),
                "slope_lo_ns_per_s": clean(c.slo),
                "slope_hi_ns_per_s": clean(c.shi),
                "flags": c.flags.tolist(),
                "segment": c.segment.tolist(),
            },
            "extra": self.extra,
            **({"publisher": self.publisher.to_dict()} if self.publisher is not None else {}),
        }

    def to_json(self, key: TableKey | None = None) -> str:
        """The table as compact JSON; signed (``signature`` field) when ``key`` is given."""
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False,
                          default=_json_default)
        if key is None:
            return text
        return json.dumps(sign_table(json.loads(text), key), separators=(",", ":"),
                          allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "table",
                  key: TableKey | None = None) -> CorrectionTable:
        """Parse and validate; :class:`SchemaError` names ``source`` and the bad field.

        With ``key``, the table must carry a valid signature by that key
        (:class:`SignatureError` otherwise; see :class:`clocksync.TableKey`)."""
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SchemaError(f"{source}: not valid JSON ({exc})") from None
        if key is not None:
            verify_table(obj, key, source)
        return cls.from_dict(obj, source)

    @classmethod
    def from_dict(cls, obj: Any, source: str = "table") -> CorrectionTable:
        return _Loader(source).table(obj)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _Loader:
    """Validating reader; every error names ``source`` and the JSON path of the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, why: str) -> SchemaError:
        return SchemaError(f"{self.source}: field '{path}': {why}")

    def get(self, obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise self.fail(f"{path}{key}", "missing")
        return obj[key]

    def int_(self, obj: dict[str, Any], key: str, path: str, minimum: int = 0) -> int:
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path}{key}", f"must be an integer, got {value!r}")
        if not minimum <= value <= _INT64_MAX:
            raise self.fail(f"{path}{key}", f"must be in {minimum}..{_INT64_MAX}, got {value}")
        return value

    def float_(self, obj: dict[str, Any], key: str, path: str, nonneg: bool = False) -> float:
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{path}{key}", f"must be a number, got {value!r}")
        number = _to_float(value)
        if not math.isfinite(number):
            raise self.fail(f"{path}{key}", f"must be finite, got {value!r}")
        if nonneg and number < 0:
            raise self.fail(f"{path}{key}", f"must be >= 0, got {value!r}")
        return number

    def str_(self, obj: dict[str, Any], key: str, path: str) -> str:
        value = self.get(obj, key, path)
        if not isinstance(value, str):
            raise self.fail(f"{path}{key}", f"must be a string, got {value!r}")
        return value

    def table(self, obj: Any) -> CorrectionTable:
        if not isinstance(obj, dict):
            raise SchemaError(f"{self.source}: a table must be a JSON object")
        schema = self.str_(obj, "schema", "")
        if not schema.startswith(_SCHEMA_PREFIX):
            raise self.fail("schema", f"expected '{SCHEMA}', got {schema!r}")
        version = schema[len(_SCHEMA_PREFIX):]
        if not version.isdigit():
            raise self.fail("schema", f"expected '{SCHEMA}', got {schema!r}")
        if int(version) > _VERSION:
            raise self.fail(
                "schema", f"version {version} is newer than this clocksync reads ({_VERSION}); "
                "upgrade clocksync")
        if int(version) != _VERSION:
            raise self.fail("schema", f"expected '{SCHEMA}', got {schema!r}")
        node = self.str_(obj, "node", "")
        if not node:
            raise self.fail("node", "must be a non-empty string")
        status = self.str_(obj, "status", "")
        if status not in STATUSES:
            raise self.fail("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
        assumptions_obj = self.get(obj, "assumptions", "")
        if not isinstance(assumptions_obj, dict):
            raise self.fail("assumptions", "must be an object")
        from ._assumptions import Assumptions

        try:
            assumptions = Assumptions.from_mapping(assumptions_obj).to_dict()
        except Exception as exc:  # InputError names the key
            raise SchemaError(f"{self.source}: field '{exc}'") from None
        segs_obj = self.get(obj, "segments", "")
        if not isinstance(segs_obj, list):
            raise self.fail("segments", "must be a list")
        segments = tuple(self.segment(s, i) for i, s in enumerate(segs_obj))
        cells = self.cells(self.get(obj, "cells", ""), len(segments))
        extra = obj.get("extra", {})
        if not isinstance(extra, dict):
            raise self.fail("extra", "must be an object")
        try:
            json.dumps(extra, allow_nan=False)
        except ValueError:
            raise self.fail("extra", "must not hold NaN or infinite numbers") from None
        return CorrectionTable(
            node=node,
            reference=self.str_(obj, "reference", ""),
            generated_at_ns=self.int_(obj, "generated_at_ns", ""),
            status=status,
            assumptions=assumptions,
            sample_count=self.int_(obj, "sample_count", ""),
            outlier_count=self.int_(obj, "outlier_count", ""),
            segments=segments,
            cells=cells,
            generation=self.int_(obj, "generation", "") if "generation" in obj else 0,
            extra=extra,
            publisher=self.publisher(obj, extra),
        )

    def publisher(self, obj: dict[str, Any], extra: dict[str, Any]) -> PublisherBlock | None:
        """The ``publisher`` block; a table from before it existed may carry the same facts
        in ``extra.agent`` (read when they validate, else the table counts as offline)."""
        if "publisher" in obj:
            return PublisherBlock.from_dict(obj["publisher"], self.source)
        legacy = extra.get("agent")
        if isinstance(legacy, dict):
            try:
                return PublisherBlock.from_dict(legacy, self.source, "extra.agent")
            except SchemaError:
                return None
        return None

    def segment(self, obj: Any, i: int) -> SegmentInfo:
        path = f"segments[{i}]."
        if not isinstance(obj, dict):
            raise self.fail(f"segments[{i}]", "must be an object")
        started_by = self.str_(obj, "started_by", path)
        if started_by not in _STARTS:
            raise self.fail(f"{path}started_by", f"must be one of {', '.join(_STARTS)}")
        first = self.int_(obj, "first_sample_local_ns", path)
        last = self.int_(obj, "last_sample_local_ns", path)
        if last < first:
            raise self.fail(f"{path}last_sample_local_ns", "is before first_sample_local_ns")
        fit = self.get(obj, "fit", path)
        fp = f"{path}fit."
        if not isinstance(fit, dict):
            raise self.fail(f"{path}fit", "must be an object")
        sigma_off = self.get(fit, "sigma_offset_ns", fp)
        sigma_skew = self.get(fit, "sigma_skew_ppm", fp)
        line = LineEstimate(
            anchor_local_ns=self.int_(fit, "anchor_local_ns", fp),
            offset_ns=self.float_(fit, "offset_ns", fp),
            skew_ppm=self.float_(fit, "skew_ppm", fp),
            sigma_offset_ns=_sigma(sigma_off, self, f"{fp}sigma_offset_ns"),
            sigma_skew_ppm=_sigma(sigma_skew, self, f"{fp}sigma_skew_ppm"),
            residual_rms_ns=self.float_(fit, "residual_rms_ns", fp, nonneg=True),
            samples_used=self.int_(fit, "samples_used", fp),
            window_start_local_ns=self.int_(fit, "window_start_local_ns", fp),
        )
        return SegmentInfo(
            index=self.int_(obj, "index", path),
            started_by=started_by,
            first_sample_local_ns=first,
            last_sample_local_ns=last,
            sample_count=self.int_(obj, "sample_count", path, minimum=1),
            fit=line,
        )

    def cells(self, obj: Any, n_segments: int) -> Cells:
        if not isinstance(obj, dict):
            raise self.fail("cells", "must be an object")
        names = ("start_local_ns", "end_local_ns", *_CELL_FLOATS, "flags", "segment")
        cols: dict[str, list[Any]] = {}
        for name in names:
            value = self.get(obj, name, "cells.")
            if not isinstance(value, list):
                raise self.fail(f"cells.{name}", "must be a list")
            cols[name] = value
        n = len(cols["start_local_ns"])
        for name in names:
            if len(cols[name]) != n:
                raise self.fail(f"cells.{name}", f"has {len(cols[name])} entries, expected {n}")
        for name in ("start_local_ns", "end_local_ns", "flags", "segment"):
            for i, v in enumerate(cols[name]):
                if type(v) is not int or not 0 <= v <= _INT64_MAX:
                    if name == "segment" and v == -1:
                        continue
                    raise self.fail(f"cells.{name}[{i}]",
                                    f"must be an integer in 0..{_INT64_MAX}, got {v!r}")
        for name in _CELL_FLOATS:
            for i, v in enumerate(cols[name]):
                # exact int/float comparison: no overflow, NaN fails, bool is not a number
                if type(v) not in (int, float) or not -MAX_ENVELOPE_NS <= v <= MAX_ENVELOPE_NS:
                    raise self.fail(f"cells.{name}[{i}]", "must be a finite number within "
                                    f"±{MAX_ENVELOPE_NS:g}, got {v!r}")
        start = np.array(cols["start_local_ns"], dtype=np.int64)
        end = np.array(cols["end_local_ns"], dtype=np.int64)
        flags = np.array(cols["flags"], dtype=np.int64)
        seg = np.array(cols["segment"], dtype=np.int64)
        bad = np.flatnonzero(end <= start)
        if len(bad):
            raise self.fail(f"cells.end_local_ns[{bad[0]}]", "must be after its start")
        gap = np.flatnonzero(start[1:] != end[:-1])
        if len(gap):
            raise self.fail(f"cells.start_local_ns[{gap[0] + 1}]",
                            "cells must be contiguous and non-overlapping "
                            f"(expected {end[gap[0]]}, got {start[gap[0] + 1]})")
        bad = np.flatnonzero((flags < 0) | (flags > (HOLDOVER | AMBIGUOUS | VOID)))
        if len(bad):
            raise self.fail(f"cells.flags[{bad[0]}]", f"unknown flag bits {flags[bad[0]]}")
        bad = np.flatnonzero((seg < -1) | (seg >= n_segments))
        if len(bad):
            raise self.fail(f"cells.segment[{bad[0]}]", f"no segment {seg[bad[0]]}")
        hi0, hi1, lo0, lo1, slo, shi = (np.array(cols[n_], dtype=np.float64)
                                         for n_ in _CELL_FLOATS)
        span_s = (end - start).astype(np.float64) / 1e9
        with np.errstate(over="ignore", invalid="ignore"):
            ends = (hi0 + hi1 * span_s, lo0 + lo1 * span_s)
            bad = np.flatnonzero(~((np.abs(ends[0]) <= MAX_ENVELOPE_NS)
                                   & (np.abs(ends[1]) <= MAX_ENVELOPE_NS)))
        if len(bad):
            raise self.fail(f"cells.hi1_ns_per_s[{bad[0]}]", "envelope leaves "
                            f"±{MAX_ENVELOPE_NS:g} ns within its cell")
        width_start = hi0 - lo0
        width_end = width_start + (hi1 - lo1) * span_s
        live = (flags & VOID) == 0
        bad = np.flatnonzero(live & ((width_start < -1e-6) | (width_end < -1e-3)))
        if len(bad):
            raise self.fail(f"cells.hi0_ns[{bad[0]}]", "upper envelope below the lower one")
        bad = np.flatnonzero(live & (shi < slo))
        if len(bad):
            raise self.fail(f"cells.slope_hi_ns_per_s[{bad[0]}]", "below slope_lo_ns_per_s")
        return Cells(start, end, hi0, hi1, lo0, lo1, flags.astype(np.uint8),
                     seg.astype(np.int32), slo, shi)


def _to_float(value: int | float) -> float:
    """``float(value)``, with integers too large for a float as ±inf (never raises)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _sigma(value: Any, loader: _Loader, path: str) -> float:
    """1σ values may be ``null`` for "unknown" (one sample); stored as +inf."""
    if value is None:
        return math.inf
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not _to_float(value) >= 0):
        raise loader.fail(path, f"must be a number >= 0 or null, got {value!r}")
    return _to_float(value)
