"""Fuzz the agent config loader with random TOML documents and mutated valid configs.

Property: :func:`load_config` raises nothing but :class:`InputError`, whose message names
the file; a config it accepts has every option of the right type and within its declared
range (:data:`OPTION_SPECS`), so the agent can start from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from clocksync import ASSUMPTION_SPECS, InputError
from clocksync.agent import OPTION_SPECS, AgentConfig, load_config, parse_listen
from tests._fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

KEYS = [spec.key for spec in OPTION_SPECS]
FIT_KEYS = [spec.name for spec in ASSUMPTION_SPECS]

VALID = """\
node = "pp-1"
ntp_servers = ["10.0.0.1", "ntp.example:123"]
stores = ["/var/lib/clocksync/tables", "redis://:secret@redis:6379/0?ttl_s=300"]
min_poll_s = 1
max_poll_s = "64s"
burst = 4
timeout_s = 0.5
interleaved = true
http_listen = "127.0.0.1:9465"
serve_port = 0

[fit]
max_skew_ppm = 100
"""

toml_scalars = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from([2**63, -(2**63) - 1, 10**400, "1s", "500ms", "2m", "-1s", "nan", "1e999s",
                     "127.0.0.1:", ":80", "[::1]:9465", "host:99999", ""]),
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _toml(doc: dict[str, Any], fit: dict[str, Any] | None) -> str:
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items()]
    if fit is not None:
        lines.append("[fit]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in fit.items()]
    return "\n".join(lines) + "\n"


def _check(path: Path) -> AgentConfig | None:
    try:
        config = load_config(path)
    except InputError as exc:
        assert str(path) in str(exc), str(exc)
        return None
    for spec in OPTION_SPECS:
        value = getattr(config, spec.key)
        if spec.kind in ("int", "float", "duration"):
            assert type(value) is (int if spec.kind == "int" else float), spec.key
            assert math.isfinite(value), spec.key
            assert spec.minimum is None or value >= spec.minimum, spec.key
            assert spec.maximum is None or value <= spec.maximum, spec.key
        elif spec.kind == "list":
            assert all(isinstance(v, str) for v in value), spec.key
        elif spec.kind == "bool":
            assert isinstance(value, bool), spec.key
        else:
            assert isinstance(value, str), spec.key
    assert config.max_poll_s >= config.min_poll_s
    assert all(isinstance(v, float) and math.isfinite(v) for v in config.fit.values())
    if config.http_listen:
        parse_listen(config.http_listen)
    return config


_SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def test_the_valid_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(VALID)
    config = _check(path)
    assert config is not None and config.node == "pp-1" and config.max_poll_s == 64.0


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), toml_values,
                       max_size=6),
       st.none() | st.dictionaries(st.one_of(st.sampled_from(FIT_KEYS), st.text(max_size=6)),
                                   toml_scalars, max_size=3))
def test_random_toml_documents_raise_only_input_error(
        tmp_path: Path, doc: dict[str, Any], fit: dict[str, Any] | None) -> None:
    path = tmp_path / "random.toml"
    path.write_text(_toml(doc, fit), encoding="utf-8", errors="surrogatepass")
    _check(path)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.lists(st.tuples(st.integers(0, len(VALID.encode())), st.binary(max_size=4),
                          st.integers(0, 4)), min_size=1, max_size=4))
def test_mutated_config_bytes_raise_only_input_error(
        tmp_path: Path, edits: list[tuple[int, bytes, int]]) -> None:
    """Byte-level splices into a valid file: insert junk, delete a few bytes."""
    data = bytearray(VALID.encode())
    for pos, junk, cut in edits:
        data[pos:pos + cut] = junk
    path = tmp_path / "mutated.toml"
    path.write_bytes(bytes(data))
    _check(path)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.sampled_from([*KEYS, "fit"]), toml_values)
def test_each_key_with_a_wrong_value_names_the_key(tmp_path: Path, key: str,
                                                   value: Any) -> None:
    path = tmp_path / "one.toml"
    path.write_text(_toml({key: value}, None), encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except InputError as exc:
        assert str(path) in str(exc)
        assert key in str(exc) or "TOML" in str(exc), str(exc)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(InputError, match="cannot read config"):
        load_config(tmp_path)  # a directory
