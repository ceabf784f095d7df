"""The node agent: sources -> sample log -> refit -> publish, plus HTTP and peer NTP.

The agent is made of parts, each in its own module: ``_source`` (the :class:`Source`
protocol, :class:`PollResult`, an in-memory :class:`MemorySource`), ``_sources`` and
``_ptpsource`` (NTP, peer, chrony, PTP, ptp4l), ``_samplelog`` (Parquet segments),
``_scheduler`` (:class:`Scheduler`: poll, refit and republish times, backoff, CPU share),
``_publisher`` (:class:`Publisher`: stamping, signing, store retries), ``_status`` (status
and health, pure), ``_time`` (injected time: :class:`Timer`, :class:`Sleeper`,
:class:`SimTime`), ``_config`` (options, each declared once) and ``_agent`` (the
:class:`Agent` wiring them), ``_http`` (/metrics, /table, /healthz). The agent only
measures: it never sets, slews or steps the system clock.
"""

from .._fit._agreement import Agreement
from ._agent import REPUBLISH_S, Agent, AgentSnapshot, SourceStatus
from ._config import (
    OPTION_SPECS,
    AgentConfig,
    OptionSpec,
    layered_options,
    load_config,
    option_field,
    option_source,
    parse_clock,
    parse_listen,
)
from ._http import AgentCollector, AgentHttpServer
from ._publisher import Publisher
from ._samplelog import SampleLog, segment_files
from ._scheduler import Scheduler, SourceSlot
from ._source import MemorySource, PollResult, Source
from ._sources import (
    ChronySource,
    ChronyTracking,
    NtpSource,
    build_sources,
    parse_chrony_sources,
    parse_chrony_tracking,
)
from ._status import (
    FREE_RUNNING_POLLS,
    UNREACHABLE_POLLS,
    YOUNG_SEGMENT_SAMPLES,
    agent_health,
    agent_status,
)
from ._time import EventSleeper, MonotonicTimer, SimTime, Sleeper, Timer

__all__ = [
    "FREE_RUNNING_POLLS",
    "OPTION_SPECS",
    "REPUBLISH_S",
    "UNREACHABLE_POLLS",
    "YOUNG_SEGMENT_SAMPLES",
    "Agent",
    "AgentCollector",
    "AgentConfig",
    "AgentHttpServer",
    "AgentSnapshot",
    "Agreement",
    "ChronySource",
    "ChronyTracking",
    "EventSleeper",
    "MemorySource",
    "MonotonicTimer",
    "NtpSource",
    "OptionSpec",
    "PollResult",
    "Publisher",
    "SampleLog",
    "Scheduler",
    "SimTime",
    "Sleeper",
    "Source",
    "SourceSlot",
    "SourceStatus",
    "Timer",
    "agent_health",
    "agent_status",
    "build_sources",
    "layered_options",
    "load_config",
    "option_field",
    "option_source",
    "parse_chrony_sources",
    "parse_chrony_tracking",
    "parse_clock",
    "parse_listen",
    "segment_files",
]
