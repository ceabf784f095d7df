"""Agent configuration: every option declared once, as a field of :class:`AgentConfig`.

Each option field carries its kind, default, inclusive range, help, TOML key (the field
name) and flag (``--`` + the key or ``flag``, dashes for underscores); :data:`OPTION_SPECS`
is read from those fields, and the TOML loader (:func:`load_config`), the range checks and
the ``clocksync agent run`` flags all derive from it. The fit assumptions come from
:data:`clocksync.ASSUMPTION_SPECS` and live in the ``[fit]`` table of the file. Precedence:
defaults < file < flags. Errors name where the value came from: the file and the key
(``agent.toml: key 'max_poll_s'``) or the flag (``command line: flag --max-poll-s``); a
check across two options names each one's source.

Example file::

    node = "pp-1"
    ntp_servers = ["10.0.0.1", "ntp.example:123", { server = "time.example", nts = true }]
    nts_ca_file = "/etc/clocksync/nts-ca.pem"   # default: the system trust store
    ptp_interfaces = ["eth1"]          # our measure-only PTP slave (root)
    ptp4l_uds = "/var/run/ptp4l"       # or: a local ptp4l's management socket
    stores = ["/var/lib/clocksync/tables", "redis://:secret@redis:6379/0?ttl_s=300"]
    min_poll_s = 1
    max_poll_s = "64s"
    http_listen = "127.0.0.1:9465"
    clock = "system"                   # labs and demos: "sim:offset_ns=-2.5e9,skew_ppm=30,..."

    [fit]
    max_skew_ppm = 100
"""

from __future__ import annotations

import dataclasses
import math
import socket
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from .._fit import Assumptions
from .._model._clock import Clock, SimClock, SystemClock
from .._model._errors import InputError
from .._model._units import parse_duration_s

__all__ = ["OPTION_SPECS", "AgentConfig", "OptionSpec", "layered_options", "load_config",
           "option_field", "option_source", "parse_clock", "parse_listen"]

Kind = Literal["str", "int", "float", "duration", "bool", "list"]
T = TypeVar("T")
_SPEC = "clocksync.option"


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: TOML key (= flag name with dashes), kind, default, inclusive range, help.

    ``duration`` options are seconds; the file and flags also accept ``"500ms"``, ``"2m"``.
    ``list`` options are lists of strings in the file and repeatable flags (``flag``).
    ``choices``: the values a ``str`` option may take (empty: any).
    ``item_keys``: boolean keys a ``list`` entry may carry when written in the file as a
    table ``{ server = "HOST[:PORT]", KEY = true }`` instead of a string (per-entry options).
    """

    key: str
    kind: Kind
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    flag: str | None = None
    choices: tuple[str, ...] = ()
    item_keys: tuple[str, ...] = ()

    @property
    def flag_name(self) -> str:
        return "--" + (self.flag or self.key).replace("_", "-")


def _option(default: T, help: str, minimum: float | None = None,
            maximum: float | None = None, *, kind: Kind | None = None, flag: str | None = None,
            choices: tuple[str, ...] = (), item_keys: tuple[str, ...] = ()) -> T:
    """A config field declaring its option; ``kind`` defaults from the default's type."""
    if kind is None:
        kind = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int)
                else "float" if isinstance(default, float) else "list"
                if isinstance(default, tuple) else "str")
    spec = {"kind": kind, "default": default, "help": help, "minimum": minimum,
            "maximum": maximum, "flag": flag, "choices": choices, "item_keys": item_keys}
    made: T = field(default=default, metadata={_SPEC: spec})
    return made


@dataclass(frozen=True)
class AgentConfig:
    """Validated agent options; each field declares its option (units in its help)."""

    node: str = _option("", "name of this node in samples and tables (default: the host name)")
    ntp_servers: tuple[str, ...] = _option(
        (), "NTP servers to measure against, HOST[:PORT] (repeatable flag); in the file an "
            "entry may be a table { server = \"HOST[:PORT]\", nts = true } to choose NTS per "
            "server", flag="ntp_server", item_keys=("nts",))
    nts: bool = _option(False, "authenticate the NTP servers with NTS (RFC 8915); their PORT "
                               "is then the NTS-KE port (default 4460), and the NTP server and "
                               "port come from NTS-KE; a server's own nts key in the file "
                               "overrides this. An NTS server is never measured "
                               "unauthenticated")
    nts_ca_file: str = _option("", "PEM file of CA certificates trusted for NTS-KE (empty: the "
                                   "system trust store)")
    peers: tuple[str, ...] = _option(
        (), "other agents' NTP ports to measure against, HOST:PORT (repeatable flag)",
        flag="peer")
    chrony: bool = _option(False, "report through the local chronyd (chronyc -c tracking / "
                                  "sources) instead of measuring twice")
    chronyc_host: str = _option("", "chronyc -h argument: the chronyd command socket path or "
                                    "host (default: chronyc's own default)")
    chronyc_path: str = _option("chronyc", "the chronyc program")
    ptp_interfaces: tuple[str, ...] = _option(
        (), "network interfaces on which our measure-only PTP slave measures against the best "
            "master (E2E, kernel software timestamps; needs root) (repeatable flag)",
        flag="ptp_interface")
    ptp_transport: str = _option("udp4", "PTP transport on ptp_interfaces: udp4 (224.0.1.129, "
                                         "ports 319/320) or l2 (Ethernet, ethertype 0x88F7)",
                                 choices=("udp4", "l2"))
    ptp_domain: int = _option(0, "PTP domainNumber to listen to on ptp_interfaces", 0, 255)
    ptp4l_uds: str = _option("", "read a local ptp4l's measurements through its management "
                                 "socket at this path (its uds_address, e.g. /var/run/ptp4l); "
                                 "empty = off")
    exclude_falsetickers: bool = _option(
        True, "leave out of the fit the new samples of a source whose interval misses the one "
              "a strict majority of sources agrees on (a falseticker), and every new sample "
              "while sources disagree without such a majority")
    min_poll_s: float = _option(1.0, "shortest poll interval (s), used while the model is "
                                     "young or its bound wide", 0.01, 86_400.0, kind="duration")
    max_poll_s: float = _option(64.0, "longest poll interval (s); failed polls back off "
                                      "(doubling) up to it", 0.01, 86_400.0, kind="duration")
    target_bound_ns: float = _option(100_000.0, "poll faster while the model's bound exceeds "
                                                "this (ns), slower while it is under half of "
                                                "it", 1.0, 1e12)
    burst: int = _option(4, "exchanges per NTP poll; the minimum-delay one is kept", 1, 32)
    burst_interval_s: float = _option(0.05, "pause between the exchanges of a burst (s)",
                                      0.0, 10.0, kind="duration")
    timeout_s: float = _option(1.0, "how long one exchange waits for its reply (s)",
                               0.001, 60.0, kind="duration")
    interleaved: bool = _option(True, "ask NTP servers for interleaved mode (exact server "
                                      "send times)")
    stores: tuple[str, ...] = _option(
        (), "table stores to publish to: DIR, file://DIR, redis://... (repeatable flag; "
            "default DATA_DIR/tables)", flag="store")
    table_key_file: str = _option("", "shared HMAC key file: published tables (stores and "
                                      "/table) are signed with it (docs/table-format.md); "
                                      "empty = unsigned")
    data_dir: str = _option("clocksync-data", "directory of the sample log (DATA_DIR/samples) "
                                              "and the default table store")
    http_listen: str = _option("127.0.0.1:9465", "HOST:PORT of the read-only HTTP endpoint "
                                                 "(/metrics, /table, /healthz); empty "
                                                 "disables it", flag="http")
    serve_port: int = _option(0, "answer NTP requests with this node's clock on this UDP "
                                 "port (peer mode); 0 = off", 0, 65_535)
    serve_address: str = _option("127.0.0.1", "address the peer-mode NTP server binds")
    window_s: float = _option(3_600.0, "refit only the samples of this recent history (s)",
                              1.0, 1e8, kind="duration")
    window_samples: int = _option(2_000, "refit at most this many recent samples (a fit costs "
                                         "about 0.25 ms per sample)", 8, 1_000_000)
    refit_min_s: float = _option(10.0, "shortest interval between refits (s)", 0.01,
                                 86_400.0, kind="duration")
    fit_cpu_share: float = _option(0.005, "refit no more often than keeps fitting under this "
                                          "share of one core (0.005 = 0.5 %)", 1e-4, 1.0)
    segment_samples: int = _option(1_000, "samples per sample-log segment before it is "
                                          "rotated", 10, 10_000_000)
    retention_s: float = _option(7 * 86_400.0, "delete sample-log segments whose newest "
                                               "sample is older than this (s)", 60.0, 1e10,
                                 kind="duration")
    clock: str = _option("system", "the node clock the agent stamps with: system (the "
                                   "system's CLOCK_REALTIME) or, for labs and demos, a "
                                   "simulated clock read through the system clock, "
                                   "sim:offset_ns=N,skew_ppm=P[,t0_ns=T][,wander_ppb_per_s=W]"
                                   "[,seed=S] (offset = reference - local at t0_ns; skew > 0: "
                                   "runs fast; t0_ns default: when the agent starts)")
    publish_backoff_max_s: float = _option(60.0, "longest wait between retries of a failed "
                                                 "publish (s)", 0.01, 86_400.0, kind="duration")
    fit: dict[str, float] = field(default_factory=dict)
    source: str = "defaults"
    #: per-server choices from the file: ``(HOST[:PORT], nts)`` for entries with an nts key
    ntp_server_nts: tuple[tuple[str, bool], ...] = ()

    def uses_nts(self, target: str) -> bool:
        """Whether NTP server ``target`` is measured with NTS (its own key, else ``nts``)."""
        return dict(self.ntp_server_nts).get(target, self.nts)

    @property
    def has_sources(self) -> bool:
        """Whether any source is configured (else the agent can only serve as a reference)."""
        return bool(self.ntp_servers or self.peers or self.chrony or self.ptp_interfaces
                    or self.ptp4l_uds)

    @property
    def store_urls(self) -> tuple[str, ...]:
        return self.stores or (str(Path(self.data_dir) / "tables"),)

    @property
    def samples_dir(self) -> Path:
        return Path(self.data_dir) / "samples"

    def build_clock(self) -> Clock:
        """The node clock ``clock`` names (a new one per call; ``t0_ns`` defaults to now)."""
        return parse_clock(self.clock)

    @classmethod
    def defaults(cls, **overrides: Any) -> AgentConfig:
        """The defaults with some options replaced (validated like flags)."""
        return load_config(None, overrides)


def _entries(spec: OptionSpec, value: Any, where: str,
             per_item: dict[str, dict[str, bool]]) -> Any:
    """A list option whose entries may be tables with ``item_keys``: the strings, with each
    table's keys recorded in ``per_item[entry]``."""
    if not isinstance(value, list | tuple):
        return value
    out: list[Any] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            out.append(item)
            continue
        base = f"{where}: key '{spec.key}[{i}]"
        target = item.get("server")
        if not isinstance(target, str):
            raise InputError(f"{base}': a table entry needs server = \"HOST[:PORT]\"")
        extra = sorted(set(item) - {"server", *spec.item_keys})
        if extra:
            raise InputError(f"{base}.{extra[0]}': unknown key (known: server, "
                             f"{', '.join(spec.item_keys)})")
        for key in spec.item_keys:
            if key in item:
                if not isinstance(item[key], bool):
                    raise InputError(f"{base}.{key}': must be true or false, got "
                                     f"{item[key]!r}")
                per_item.setdefault(target, {})[key] = item[key]
        out.append(target)
    return out
#: a config field declaring its option (for other commands' option tables)
option_field = _option

#: every option, read from the fields of :class:`AgentConfig` (their one declaration)
OPTION_SPECS: tuple[OptionSpec, ...] = tuple(
    OptionSpec(key=f.name, **f.metadata[_SPEC])
    for f in dataclasses.fields(AgentConfig) if _SPEC in f.metadata)

_SPECS = {spec.key: spec for spec in OPTION_SPECS}


#: the source name of options given as flags (``load_config``'s ``overrides``)
COMMAND_LINE = "command line"


def _source(where: str, spec: OptionSpec) -> str:
    """``FILE: key 'max_poll_s'`` or ``command line: flag --max-poll-s``."""
    if where == COMMAND_LINE:
        return f"{where}: flag {spec.flag_name}"
    return f"{where}: key '{spec.key}'"


def _convert(spec: OptionSpec, value: Any, where: str) -> Any:
    """One value to the option's type, range-checked; InputError names ``where`` and key
    (or flag)."""
    name = _source(where, spec)
    if spec.kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{name}: must be a list of strings, got {value!r}")
        return tuple(value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{name}: must be true or false, got {value!r}")
        return value
    if spec.kind == "str":
        if not isinstance(value, str):
            raise InputError(f"{name}: must be a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise InputError(f"{name}: must be one of {', '.join(spec.choices)}, "
                             f"got {value!r}")
        return value
    if isinstance(value, bool):
        raise InputError(f"{name}: must be a number, got {value!r}")
    number: float
    if spec.kind == "duration" and isinstance(value, str):
        try:
            number = parse_duration_s(value)
        except ValueError as exc:
            raise InputError(f"{name}: {exc}") from None
    elif spec.kind == "int":
        if not isinstance(value, int):
            raise InputError(f"{name}: must be an integer, got {value!r}")
        number = value
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise InputError(f"{name}: must be finite, got {value!r}") from None
    else:
        raise InputError(f"{name}: must be a number, got {value!r}")
    if isinstance(number, float) and not math.isfinite(number):
        raise InputError(f"{name}: must be finite, got {value!r}")
    low, high = spec.minimum, spec.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        raise InputError(f"{name}: must be within [{low:g}, {high:g}], got {value!r}")
    return int(number) if spec.kind == "int" else float(number)


def parse_listen(text: str, where: str = "http_listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65_536:
        raise InputError(f"{where}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


#: keys of ``sim:`` clocks -> whether the value is an integer
_SIM_KEYS = {"offset_ns": False, "skew_ppm": False, "t0_ns": True, "wander_ppb_per_s": False,
             "seed": True}
#: largest simulated offset (ns): about three years, like the fit's physical limit ±1e17 ns
_SIM_MAX_OFFSET_NS = 1e17
_SIM_MAX_SKEW_PPM = 1e5


def parse_clock(text: str, where: str = "clock") -> Clock:
    """A node clock from its ``clock`` option text.

    ``system``: :class:`clocksync.SystemClock`. ``sim:KEY=VALUE,...``: a
    :class:`clocksync.SimClock` reading the system clock through a known error, for labs and
    demos (all keys optional): ``offset_ns`` (reference - local at ``t0_ns``, the tables'
    sign: ``-2.5e9`` is a clock 2.5 s ahead), ``skew_ppm`` (positive: runs fast),
    ``t0_ns`` (system time at which the offset is ``offset_ns``; default: now),
    ``wander_ppb_per_s`` and ``seed`` (a seeded random frequency wander). Two processes given
    the same text with the same ``t0_ns`` read the same clock.

    Raises:
        InputError: naming ``where``, for an unknown kind or key or a bad value.
    """
    text = text.strip()
    if text == "system":
        return SystemClock()
    kind, sep, rest = text.partition(":")
    if kind != "sim" or not sep:
        raise InputError(f"{where}: expected 'system' or 'sim:KEY=VALUE,...', got {text!r}")
    values: dict[str, float | int] = {}
    for item in (part.strip() for part in rest.split(",")):
        if not item:
            continue
        key, eq, raw = (s.strip() for s in item.partition("="))
        if key not in _SIM_KEYS or not eq:
            raise InputError(f"{where}: sim clock: expected KEY=VALUE with KEY one of "
                             f"{', '.join(_SIM_KEYS)}, got {item!r}")
        if key in values:
            raise InputError(f"{where}: sim clock: {key} given twice")
        try:
            number = float(raw)
        except ValueError:
            raise InputError(f"{where}: sim clock: {key} must be a number, got "
                             f"{raw!r}") from None
        if not math.isfinite(number):
            raise InputError(f"{where}: sim clock: {key} must be finite, got {raw!r}")
        if _SIM_KEYS[key]:
            try:
                values[key] = int(raw)
            except ValueError:
                if not number.is_integer():
                    raise InputError(f"{where}: sim clock: {key} must be an integer, got "
                                     f"{raw!r}") from None
                values[key] = int(number)
        else:
            values[key] = number
    limits = {"offset_ns": _SIM_MAX_OFFSET_NS, "skew_ppm": _SIM_MAX_SKEW_PPM,
              "wander_ppb_per_s": 1e6, "t0_ns": 2.0 ** 62}
    for key, limit in limits.items():
        if key in values and abs(values[key]) > limit:
            raise InputError(f"{where}: sim clock: {key} must be within ±{limit:g}, got "
                             f"{values[key]!r}")
    if values.get("wander_ppb_per_s", 0.0) < 0:
        raise InputError(f"{where}: sim clock: wander_ppb_per_s must be >= 0")
    return SimClock(t0_ns=int(values.get("t0_ns", time.time_ns())),
                    offset0_ns=float(values.get("offset_ns", 0.0)),
                    skew_ppm=float(values.get("skew_ppm", 0.0)),
                    wander_ppb_per_s=float(values.get("wander_ppb_per_s", 0.0)),
                    seed=int(values.get("seed", 0)))


#: longest path of a UNIX-domain socket (sun_path holds 108 octets with the final NUL)
_UDS_PATH_MAX = 107


def _check_ptp(values: dict[str, Any], source: Callable[[str], str]) -> None:
    """Interface names as the kernel allows them (1-15 octets, no '/', no blanks), no
    duplicates; a socket path that fits ``sun_path``."""
    seen: set[str] = set()
    for iface in values["ptp_interfaces"]:
        if not 0 < len(iface.encode()) <= 15 or "/" in iface or iface != iface.strip() \
                or any(c.isspace() for c in iface):
            raise InputError(f"{source('ptp_interfaces')}: not an interface name: "
                             f"{iface!r}")
        if iface in seen:
            raise InputError(f"{source('ptp_interfaces')}: {iface!r} given twice")
        seen.add(iface)
    if len(values["ptp4l_uds"].encode()) > _UDS_PATH_MAX:
        raise InputError(f"{source('ptp4l_uds')}: a socket path is at most "
                         f"{_UDS_PATH_MAX} octets, got {len(values['ptp4l_uds'].encode())}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def layered_options(
    specs: tuple[OptionSpec, ...], path: str | Path | None, overrides: Mapping[str, Any] | None,
    tables: Mapping[str, Callable[[str, Any], None]] | None = None,
) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, dict[str, bool]]]]:
    """Defaults, then the TOML file at ``path``, then ``overrides`` (flags; None = unset),
    converted and range-checked by ``specs``.

    ``tables``: keys that are not options but handled by a callback ``(source, value)``
    (the agent's ``[fit]`` table). Returns ``(values, origin, per_entry)``: each key's
    value, the source that set it last (absent: the default), and the per-entry keys of
    list options with ``item_keys``.

    Raises:
        InputError: unreadable file, unknown key, wrong type or out-of-range value; the
            message names the file and the key, or the command-line flag.
    """
    by_key = {spec.key: spec for spec in specs}
    extra = dict(tables or {})
    values: dict[str, Any] = {spec.key: spec.default for spec in specs}
    per_entry: dict[str, dict[str, dict[str, bool]]] = {}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if path is not None:
        layers.append((str(path), _read_file(Path(path))))
    if overrides:
        layers.append((COMMAND_LINE, {k: v for k, v in overrides.items() if v is not None}))
    origin: dict[str, str] = {}  # key -> the source that set it last
    for where, layer in layers:
        for key, value in layer.items():
            if key in extra:
                extra[key](where, value)
                continue
            spec = by_key.get(key)
            if spec is None:
                known = ", ".join([*by_key, *extra])
                raise InputError(f"{where}: key '{key}': unknown option (known: {known})")
            if spec.item_keys:
                per_item: dict[str, dict[str, bool]] = {}  # a later list replaces it whole
                value = _entries(spec, value, where, per_item)
                per_entry[key] = per_item
            values[key] = _convert(spec, value, where)
            origin[key] = where
    return values, origin, per_entry


def option_source(specs: tuple[OptionSpec, ...], origin: Mapping[str, str], key: str) -> str:
    """Where option ``key`` came from, for messages: ``FILE: key 'k'``,
    ``command line: flag --k`` or ``defaults: key 'k'``."""
    spec = next(s for s in specs if s.key == key)
    return _source(origin.get(key, "defaults"), spec)


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides`` (flags; None = unset).

    ``overrides`` may hold a ``fit`` mapping of assumption values.

    Raises:
        InputError: unreadable file, unknown key, wrong type or out-of-range value; the
            message names the file and the key, or the command-line flag.
    """
    fit: dict[str, float] = {}

    def take_fit(where: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: key 'fit': must be a table of assumptions")
        try:
            Assumptions.from_mapping(dict(value), where=f"{where}: fit")  # validates
        except OverflowError:  # an integer too large for a float
            raise InputError(f"{where}: key 'fit': values must be finite numbers "
                             f"within their ranges, got {dict(value)!r}") from None
        fit.update({k: float(v) for k, v in value.items()})

    values, origin, per_entry = layered_options(OPTION_SPECS, path, overrides,
                                                {"fit": take_fit})

    def source(key: str) -> str:
        return _source(origin.get(key, "defaults"), _SPECS[key])

    if values["max_poll_s"] < values["min_poll_s"]:
        raise InputError(f"{source('max_poll_s')}: must be >= min_poll_s "
                         f"({values['min_poll_s']:g} s, from {source('min_poll_s')}), got "
                         f"{values['max_poll_s']:g}")
    if values["http_listen"]:
        parse_listen(values["http_listen"], source("http_listen"))
    _check_ptp(values, source)
    parse_clock(values["clock"], source("clock"))
    if values["nts_ca_file"] and not Path(values["nts_ca_file"]).is_file():
        raise InputError(f"{source('nts_ca_file')}: no such file: "
                         f"{values['nts_ca_file']!r}")
    if not values["node"]:
        values["node"] = socket.gethostname() or "local"
    nts_choices = tuple((target, options["nts"]) for target, options
                        in per_entry.get("ntp_servers", {}).items() if "nts" in options)
    return AgentConfig(**values, fit=fit, source=str(path) if path is not None else "defaults",
                       ntp_server_nts=nts_choices)
