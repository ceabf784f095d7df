"""contrib/: the systemd units pass ``systemd-analyze verify`` (hardened, no capability
unless the PTP/port-123 drop-in adds it), agent.toml.example parses with the real loader
and lists every option at its default, prometheus.yml.example passes ``promtool``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clocksync import ASSUMPTION_SPECS
from clocksync.agent import OPTION_SPECS, load_config

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"
UNITS = ("clocksync-agent.service", "clocksync-collector.service")
DROP_IN = CONTRIB / "systemd" / "clocksync-agent.service.d" / "ptp-and-port-123.conf"
#: keys the example sets to a deployment's value instead of the default
EXAMPLE_VALUES = {"node": "pp-1", "ntp_servers": ["10.0.0.1"],
                  "data_dir": "/var/lib/clocksync"}


def _clocksync_binary() -> str:
    path = Path(sys.executable).parent / "clocksync"
    if not path.exists():
        pytest.skip(f"no clocksync script beside {sys.executable} (pip install -e .)")
    return str(path)


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is missing (Debian package: systemd)")
    return found


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _copy_units(tmp: Path) -> Path:
    """The units with ExecStart pointing at this venv's clocksync (verify checks that the
    program exists), in a directory of their own."""
    unit_dir = tmp / "units"
    unit_dir.mkdir()
    exe = _clocksync_binary()
    for name in UNITS:
        text = (CONTRIB / "systemd" / name).read_text()
        assert "ExecStart=/usr/local/bin/clocksync " in text
        (unit_dir / name).write_text(text.replace("/usr/local/bin/clocksync", exe))
    return unit_dir


def _verify(unit_dir: Path, name: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run([_systemd_analyze(), "verify", "--man=no", str(unit_dir / name)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_clean(tmp_path: Path, name: str) -> None:
    unit_dir = _copy_units(tmp_path)
    res = _verify(unit_dir, name)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr  # unknown keys are warnings, not errors
    # and verify does read the file: a misspelt directive is reported
    path = unit_dir / name
    path.write_text(path.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    bad = _verify(unit_dir, name)
    assert "ProtectHom" in bad.stderr


def test_drop_in_verifies_and_is_read(tmp_path: Path) -> None:
    unit_dir = _copy_units(tmp_path)
    drop = unit_dir / "clocksync-agent.service.d"
    drop.mkdir()
    shutil.copy(DROP_IN, drop / DROP_IN.name)
    res = _verify(unit_dir, "clocksync-agent.service")
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    (drop / DROP_IN.name).write_text(DROP_IN.read_text() + "AmbientCapabilitie=CAP_SYS_TIME\n")
    bad = _verify(unit_dir, "clocksync-agent.service")
    assert "AmbientCapabilitie" in bad.stderr  # the drop-in is parsed with the unit


@pytest.mark.parametrize("name", UNITS)
def test_units_are_hardened(name: str) -> None:
    text = (CONTRIB / "systemd" / name).read_text()
    d = _directives(text)
    assert d["DynamicUser"] == ["yes"] and d["NoNewPrivileges"] == ["yes"]
    assert d["ProtectSystem"] == ["strict"] and d["ProtectHome"] == ["yes"]
    assert d["PrivateTmp"] == ["yes"] and d["ProtectClock"] == ["yes"]
    assert d["StateDirectory"] and d["SystemCallFilter"] == ["@system-service"]
    assert d["CapabilityBoundingSet"] == [""] and d["AmbientCapabilities"] == [""]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    command = d["ExecStart"][0].split()
    assert command[1:] in (["agent", "run", "--config", "/etc/clocksync/agent.toml"],
                           ["collector", "run", "--config", "/etc/clocksync/collector.toml"])
    if "collector" in name:
        assert "NEEDS THE COLLECTOR" in text


def test_drop_in_adds_only_the_ptp_and_port_123_capabilities() -> None:
    d = _directives(DROP_IN.read_text())
    caps = {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}
    assert set(d["CapabilityBoundingSet"][0].split()) == caps
    assert set(d["AmbientCapabilities"][0].split()) == caps
    assert "AF_PACKET" in d["RestrictAddressFamilies"][0].split()


def test_agent_command_line_of_the_unit_exists() -> None:
    """The unit's ExecStart arguments are a real command line of the CLI."""
    from click.testing import CliRunner

    from clocksync.cli import main

    res = CliRunner().invoke(main, ["agent", "run", "--config",
                                    str(CONTRIB / "agent.toml.example"), "--help"])
    assert res.exit_code == 0 and "--config" in res.output


def test_agent_toml_example_parses_with_every_key_at_its_default() -> None:
    path = CONTRIB / "agent.toml.example"
    config = load_config(path)  # the real loader: types, ranges, cross-checks
    assert config.node == "pp-1" and config.ntp_servers == ("10.0.0.1",)
    raw = tomllib.loads(path.read_text())
    assert set(raw) == {spec.key for spec in OPTION_SPECS} | {"fit"}, "every option, once"
    assert set(raw["fit"]) == {spec.name for spec in ASSUMPTION_SPECS}
    for spec in OPTION_SPECS:
        want = EXAMPLE_VALUES.get(spec.key, spec.default)
        got = getattr(config, spec.key)
        if spec.kind == "list":
            assert list(got) == list(want), spec.key
        else:
            assert got == want, spec.key
    for aspec in ASSUMPTION_SPECS:
        assert config.fit[aspec.name] == aspec.default, aspec.name
    text = path.read_text()
    for key in EXAMPLE_VALUES:  # the non-default values say so, with the default
        block = text[:text.index(f"\n{key} = ")]
        assert "EXAMPLE; default" in block[block.rfind("\n\n"):], key


def test_prometheus_example_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing (Debian package: prometheus; tests/install.sh "
                    "installs it as root)")
    config = tmp_path / "prometheus.yml"
    shutil.copy(CONTRIB / "prometheus.yml.example", config)
    res = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr
    port = int(next(s for s in OPTION_SPECS if s.key == "http_listen").default.split(":")[1])
    live = "\n".join(line for line in config.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    targets = re.findall(r'"([\d.]+):(\d+)"', live)
    assert targets and all(int(p) == port for _, p in targets)  # the agents' /metrics port
    config.write_text(config.read_text().replace("scrape_timeout: 5s",
                                                 "scrape_timeout: 50s"))
    bad = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode != 0  # timeout longer than the interval: promtool does check
