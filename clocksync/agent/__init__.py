"""The node agent: sources -> sample log -> refit -> publish, plus HTTP and peer NTP.

Modules: ``_config`` (options, declared once), ``_samplelog`` (Parquet segments),
``_sources`` (NTP, peer, chrony), ``_status`` (ClockBound-style status, pure),
``_agent`` (the loop), ``_http`` (/metrics, /table, /healthz). The agent only measures: it
never sets, slews or steps the system clock.
"""

from ._agent import REPUBLISH_S, Agent, AgentSnapshot, SourceStatus, build_sources
from ._config import OPTION_SPECS, AgentConfig, OptionSpec, load_config, parse_listen
from ._http import AgentCollector, AgentHttpServer
from ._samplelog import SampleLog
from ._sources import (
    ChronySource,
    ChronyTracking,
    NtpSource,
    PollResult,
    Source,
    parse_chrony_sources,
    parse_chrony_tracking,
)
from ._status import FREE_RUNNING_POLLS, UNREACHABLE_POLLS, agent_status

__all__ = [
    "FREE_RUNNING_POLLS",
    "OPTION_SPECS",
    "REPUBLISH_S",
    "UNREACHABLE_POLLS",
    "Agent",
    "AgentCollector",
    "AgentConfig",
    "AgentHttpServer",
    "AgentSnapshot",
    "ChronySource",
    "ChronyTracking",
    "NtpSource",
    "OptionSpec",
    "PollResult",
    "SampleLog",
    "Source",
    "SourceStatus",
    "agent_status",
    "build_sources",
    "load_config",
    "parse_chrony_sources",
    "parse_chrony_tracking",
    "parse_listen",
]
