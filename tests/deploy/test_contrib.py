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


def test_drop_in_adds_only_the_ptp_and_port_123_capabilities() -> None:
    d = _directives(DROP_IN.read_text())
    caps = {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}
    assert set(d["CapabilityBoundingSet"][0].split()) == caps
    assert set(d["AmbientCapabilities"][0].split()) == caps
    assert "AF_PACKET" in d["RestrictAddressFamilies"][0].split()


def test_collector_toml_example_parses_with_every_key_once() -> None:
    from clocksync.collector import COLLECTOR_OPTIONS, load_collector_config

    path = CONTRIB / "collector.toml.example"
    config = load_collector_config(path)  # the real loader: types, ranges, cross-checks
    assert config.preset == "restate" and config.store
    raw = tomllib.loads(path.read_text())
    assert set(raw) == {spec.key for spec in COLLECTOR_OPTIONS}, "every option, once"
    examples = {"listen", "store", "preset", "data_dir"}
    for spec in COLLECTOR_OPTIONS:
        if spec.key in examples:
            continue
        got = getattr(config, spec.key)
        assert (list(got) if spec.kind == "list" else got) == (
            list(spec.default) if spec.kind == "list" else spec.default), spec.key
    from click.testing import CliRunner

    from clocksync.cli import main

    res = CliRunner().invoke(main, ["collector", "run", "--config", str(path), "--help"])
    assert res.exit_code == 0 and "--config" in res.output


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
    shutil.copy(CONTRIB / "prometheus" / "clocksync-collector.rules.yml", tmp_path)
    res = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr
    port = int(next(s for s in OPTION_SPECS if s.key == "http_listen").default.split(":")[1])
    live = "\n".join(line for line in config.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    agents = live[live.index("job_name: clocksync-agent"):
                  live.index("job_name: clocksync-collector")]
    targets = re.findall(r'"([\d.]+):(\d+)"', agents)
    assert targets and all(int(p) == port for _, p in targets)  # the agents' /metrics port
    from clocksync.collector import COLLECTOR_OPTIONS

    listen = next(s for s in COLLECTOR_OPTIONS if s.key == "listen").default
    collector = re.findall(r'"([\d.]+):(\d+)"', live[live.index("job_name: clocksync-collector"):])
    assert collector and all(p == listen.split(":")[1] for _, p in collector)
    config.write_text(config.read_text().replace("scrape_timeout: 5s",
                                                 "scrape_timeout: 50s"))
    bad = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode != 0  # timeout longer than the interval: promtool does check


def _deploy_snippets() -> list[str]:
    """The TOML blocks and heredocs (<<'EOF' ... EOF) that docs/deploy.md has users write."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    blocks += re.findall(r"<<'EOF'\n(.*?)\nEOF\n", text, re.S)
    return blocks


def test_deploy_guide_configs_load(tmp_path: Path) -> None:
    """Every agent.toml the guide writes loads with the real loader; the credentials
    drop-in it writes verifies with the unit."""
    snippets = _deploy_snippets()
    tomls = [s for s in snippets if not s.startswith("[Service]")]
    assert len(tomls) >= 2  # the reference's and a node's
    for i, snippet in enumerate(tomls):
        path = tmp_path / f"agent{i}.toml"
        path.write_text(snippet)
        config = load_config(path)
        assert config.http_listen == "0.0.0.0:9465" and config.data_dir == "/var/lib/clocksync"
        assert config.has_sources or config.serve_port  # `agent run` accepts it
    drop_ins = [s for s in snippets if s.startswith("[Service]")]
    assert drop_ins
    unit_dir = _copy_units(tmp_path)
    drop = unit_dir / "clocksync-agent.service.d"
    drop.mkdir()
    (drop / "credentials.conf").write_text(drop_ins[0] + "\n")
    res = _verify(unit_dir, "clocksync-agent.service")
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


def test_readme_install_line_covers_the_documented_agent_command() -> None:
    """The README's install line installs what its agent command (a Redis store, /metrics
    on by default) and --plot import: their extras' packages, per pyproject.toml."""
    readme = (ROOT / "README.md").read_text()
    extras_given = re.search(r"pip install -e '\.\[([a-z,]+)\]'", readme)
    assert extras_given, "an install line with extras"
    extras = set(extras_given.group(1).split(","))
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    installed = {re.split(r"[<>=\[ ]", req)[0].lower()
                 for extra in extras for req in optional[extra]}
    assert "--store 'redis://" in readme and "/metrics" in readme
    assert {"redis", "prometheus-client", "matplotlib"} <= installed, installed
    for extra in optional:  # the extras table names every extra
        if extra != "dev":
            assert f"| `{extra}` |" in readme, extra
