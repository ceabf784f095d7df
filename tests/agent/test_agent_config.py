"""Agent configuration: one declaration per option, TOML + flags, errors naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocksync import InputError
from clocksync.agent import OPTION_SPECS, AgentConfig, load_config
from clocksync.cli import main


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_every_option_is_a_config_field_and_a_flag() -> None:
    fields = set(AgentConfig.__dataclass_fields__)
    result = CliRunner().invoke(main, ["agent", "run", "--help"])
    assert result.exit_code == 0, result.output
    for spec in OPTION_SPECS:
        assert spec.key in fields
        assert spec.flag_name in result.output
    assert "--max-skew-ppm" in result.output  # the fit assumptions too


def test_defaults_file_then_flags(tmp_path: Path) -> None:
    path = _write(tmp_path, 'node = "pp-1"\nntp_servers = ["10.0.0.1", "ntp.example:1123"]\n'
                            'min_poll_s = "500ms"\nmax_poll_s = 8\nburst = 2\n'
                            '[fit]\nmax_skew_ppm = 100\n')
    cfg = load_config(path, {"burst": 3, "max_poll_s": None, "fit": {"step_confirm": 4}})
    assert cfg.node == "pp-1"
    assert cfg.ntp_servers == ("10.0.0.1", "ntp.example:1123")
    assert cfg.min_poll_s == 0.5
    assert cfg.max_poll_s == 8.0  # None = flag not given: the file's value stays
    assert cfg.burst == 3  # flags win
    assert cfg.fit == {"max_skew_ppm": 100.0, "step_confirm": 4.0}
    assert cfg.store_urls == (str(Path(cfg.data_dir) / "tables"),)
    defaults = load_config()
    assert defaults.http_listen.startswith("127.0.0.1:")  # loopback unless configured
    assert defaults.node  # host name


@pytest.mark.parametrize(("text", "needles"), [
    ("burst = 0\n", ["key 'burst'", "within"]),
    ("burst = 2.5\n", ["key 'burst'", "integer"]),
    ("min_poll_s = \"soon\"\n", ["key 'min_poll_s'", "duration"]),
    ("ntp_servers = [1, 2]\n", ["key 'ntp_servers'", "list of strings"]),
    ("chrony = \"yes\"\n", ["key 'chrony'", "true or false"]),
    ("polll = 3\n", ["key 'polll'", "unknown option"]),
    ("min_poll_s = 10\nmax_poll_s = 2\n", ["key 'max_poll_s'", ">= min_poll_s"]),
    ("http_listen = \"localhost\"\n", ["key 'http_listen'", "HOST:PORT"]),
    ("[fit]\nmax_skew_ppm = -1\n", ["fit.max_skew_ppm", "within"]),
    ("[fit]\nmax_skw = 1\n", ["fit.max_skw", "unknown assumption"]),
    ("burst = \n", ["not valid TOML"]),
])
def test_errors_name_file_and_key(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, message


def test_flag_errors_name_the_command_line() -> None:
    with pytest.raises(InputError, match=r"command line: flag --min-poll-s"):
        load_config(None, {"min_poll_s": 0.0})


def test_cli_bad_flag_and_bad_config(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["agent", "run", "--burst", "0"])
    assert result.exit_code == 2
    assert "--burst" in result.output
    result = runner.invoke(main, ["agent", "run", "--min-poll-s", "fast"])
    assert result.exit_code == 2
    assert "not a duration" in result.output
    path = _write(tmp_path, "window_samples = 3\n")
    result = runner.invoke(main, ["agent", "run", "--config", str(path),
                                  "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert str(path) in result.output and "window_samples" in result.output
    result = runner.invoke(main, ["agent", "run", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "nothing to do" in result.output
    result = runner.invoke(main, ["agent", "run", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1
    assert "missing.toml" in result.output


def test_case9_a_cross_key_error_names_the_file_not_the_command_line(tmp_path: Path) -> None:
    """issue 14 case 9: min/max poll set in the file are reported against the file's keys;
    a flag that breaks the check is reported as the flag, the other side by its source."""
    path = _write(tmp_path, "min_poll_s = 100\nmax_poll_s = 10\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key 'max_poll_s': must be >= min_poll_s")
    assert f"from {path}: key 'min_poll_s'" in message and "command line" not in message
    with pytest.raises(InputError, match=r"^command line: flag --max-poll-s: .* from "
                                         rf"{re.escape(str(path))}: key 'min_poll_s'"):
        load_config(path, {"max_poll_s": 5.0})
    runner = CliRunner()
    result = runner.invoke(main, ["agent", "run", "--config", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}: key 'max_poll_s'" in result.output
