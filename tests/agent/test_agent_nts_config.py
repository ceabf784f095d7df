"""NTS options of the agent: the global --nts flag, per-server nts keys in the file, the CA
file, and the sources they build (no network needed: NTS-KE runs at the first poll)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocksync import InputError, SystemClock
from clocksync.agent import AgentConfig, build_sources, load_config
from clocksync.cli import main


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_per_server_nts_keys_and_the_global_flag(tmp_path: Path) -> None:
    path = _file(tmp_path, 'ntp_servers = ["127.0.0.1:11123", '
                           '{ server = "localhost:14460", nts = true }, '
                           '{ server = "127.0.0.2", nts = false }]\n')
    config = load_config(path)
    assert config.ntp_servers == ("127.0.0.1:11123", "localhost:14460", "127.0.0.2")
    assert [config.uses_nts(t) for t in config.ntp_servers] == [False, True, False]
    flagged = load_config(path, {"nts": True})
    assert [flagged.uses_nts(t) for t in flagged.ntp_servers] == [True, True, False]
    sources = build_sources(config, SystemClock())
    try:
        assert [s.name for s in sources] == ["ntp:127.0.0.1:11123", "nts:localhost:14460",
                                             "ntp:127.0.0.2:123"]
    finally:
        for source in sources:
            source.close()


def test_nts_flag_defaults_the_port_to_4460() -> None:
    config = AgentConfig.defaults(ntp_servers=["localhost"], nts=True)
    sources = build_sources(config, SystemClock())
    try:
        assert [s.name for s in sources] == ["nts:localhost:4460"]
    finally:
        for source in sources:
            source.close()


@pytest.mark.parametrize(("text", "message"), [
    ('ntp_servers = [{ nts = true }]', "'ntp_servers[0]': a table entry needs server"),
    ('ntp_servers = [{ server = "a", nts = 1 }]', "'ntp_servers[0].nts': must be true or"),
    ('ntp_servers = [{ server = "a", ntz = true }]', "'ntp_servers[0].ntz': unknown key"),
    ('nts_ca_file = "/no/such/ca.pem"', "key 'nts_ca_file': no such file"),
])
def test_bad_nts_settings_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text + "\n")
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_agent_run_help_lists_the_nts_options() -> None:
    result = CliRunner().invoke(main, ["agent", "run", "--help"])
    assert result.exit_code == 0
    assert "--nts / --no-nts" in result.output and "--nts-ca-file" in result.output
