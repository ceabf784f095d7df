"""JSON text as trace producers write it: one document, one document per line (JSON lines,
as the OpenTelemetry Collector's file exporter writes, whatever the file is called), or
documents one after another. Every parsed object carries the line where it starts under
:data:`LINE_KEY`, so errors can name ``file:line``."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from json import decoder as _jd
from json import scanner as _js
from typing import Any

from .._model._errors import InputError
from ._fields import LINE_KEY
from ._schema import BadRecord

__all__ = ["json_values", "read_text"]

_json_object: Any = getattr(_jd, "JSONObject")  # noqa: B009 - untyped in typeshed
_py_make_scanner: Any = getattr(_js, "py_make_scanner")  # noqa: B009
_LINE_SUFFIXES = (".jsonl", ".ndjson")
_NEWLINE = re.compile("\n")


class _LineDecoder(_jd.JSONDecoder):
    """A JSON decoder that stores the line where each object starts under ``LINE_KEY``
    (``first_line`` is the line number of ``text``'s first line)."""

    def __init__(self, text: str, first_line: int = 1) -> None:
        super().__init__()
        newlines = [m.start() for m in _NEWLINE.finditer(text)]

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            obj, end = _json_object(s_and_end, *args)
            obj[LINE_KEY] = bisect.bisect_left(newlines, s_and_end[1]) + first_line
            return obj, end

        self.parse_object = parse_object
        self.memo: dict[str, str] = {}
        self.scan_once = _py_make_scanner(self)


class _Tag:
    """``object_hook`` that stores one line number in every object."""

    def __init__(self, line: int) -> None:
        self.line = line

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj[LINE_KEY] = self.line
        return obj


def read_text(path: str) -> str:
    """The file as text (a UTF-8 byte order mark dropped); :class:`InputError` naming the
    file when it cannot be read or is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return text.removeprefix("\ufeff")


def _is_value_line(line: str) -> bool:
    """Whether one line alone is a whole JSON object or array."""
    stripped = line.strip()
    if not stripped or stripped[0] not in "[{":
        return False
    try:
        json.loads(stripped)
    except json.JSONDecodeError:
        return False
    return True


def _line_mode(path: str, text: str) -> bool:
    """JSON lines: by name (``.jsonl``, ``.ndjson``), or because one of the first two
    non-empty lines is a whole value and another line follows (a pretty-printed document
    never has a line that is a whole object on its own at its start)."""
    if path.lower().endswith(_LINE_SUFFIXES):
        return True
    lines: list[str] = []
    pos = 0
    while pos < len(text) and len(lines) < 3:
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        if text[pos:end].strip():
            lines.append(text[pos:end])
        pos = end + 1
    return len(lines) >= 2 and any(_is_value_line(line) for line in lines[:2])


def _bad_json(path: str, line: int, msg: str, skip_bad: bool, bad: list[BadRecord]) -> None:
    where = f"{path}:{line}"
    if not skip_bad:
        raise InputError(f"{where}: not valid JSON ({msg})")
    bad.append(BadRecord(where, f"not valid JSON ({msg})"))


def json_values(path: str, text: str, skip_bad: bool, bad: list[BadRecord]
                ) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` for every top-level JSON value of ``text``. A line that is not
    valid JSON (JSON lines) or a document that is not (otherwise) raises
    :class:`InputError` naming ``file:line``, or with ``skip_bad`` becomes a
    :class:`BadRecord` (JSON lines go on with the next line)."""
    if _line_mode(path, text):
        for lineno, chunk in enumerate(text.split("\n"), start=1):
            if not chunk.strip():
                continue
            try:  # one line: every object starts on it, so the C decoder can tag them
                yield lineno, json.loads(chunk, object_hook=_Tag(lineno))
            except json.JSONDecodeError as exc:
                _bad_json(path, lineno, exc.msg, skip_bad, bad)
        return
    decoder = _LineDecoder(text)
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            _bad_json(path, exc.lineno, exc.msg, skip_bad, bad)
            return  # no safe place to resume inside one document
        yield line, value
