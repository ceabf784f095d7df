"""NTS client (RFC 8915): NTS-KE, a cookie jar, and authenticated NTP exchanges.

:class:`NtsClient` runs NTS-KE (:func:`~._ntske.key_exchange`) on first use, then measures
with an :class:`~clocksync.ntp.NtpClient` to the NTP server and port NTS-KE named, sealing
each request and checking each reply (:mod:`._ntsfields`). So an NTS sample comes from the
same kernel TX/RX stamps, the same interleaved mode and the same exchange arithmetic as a
plain one: sealing happens before the request leaves (before ``t1``), checking after the
reply's RX stamp (after ``t4``).

Behaviour:

- every request spends one cookie and carries placeholders for as many more as refill the
  jar to :data:`MAX_COOKIES`; each authentic reply returns that many new cookies;
- NTS-KE runs again when the jar cannot pay for the next exchange (lost replies each cost a
  cookie) or after an NTS NAK (the server refused our cookie: the jar is emptied);
- a reply must echo the request's 32-octet random Unique Identifier and carry a valid
  authenticator over header and fields; anything else (forged, altered, replayed, stripped
  of its authenticator) is counted and ignored while the genuine reply may still come;
- Kiss-o'-Death: only authenticated ones count (RATE: back off; DENY/RSTR: stop), except
  NTS NAK, which is unauthenticated by design; an unauthenticated RATE/DENY is a forgery;
- never falls back to unauthenticated NTP: without keys and cookies there is no exchange.

Failures are counted by reason in :attr:`NtsClient.nts_failures` (:class:`NtsFailure`:
``tls``, ``ke``, ``nak``, ``auth``, ``unique_id``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import secrets

from .._model._clock import Clock
from .._model._errors import InputError
from ._client import Burst, NtpClient, NtpMeasurement, run_burst
from ._errors import (
    NtpAddressError,
    NtsFailure,
    NtsKeyExchangeError,
    NtsRejectError,
    RejectReason,
)
from ._exchange import DEFAULT_FREQ_TOLERANCE_PPM
from ._ntsfields import NONCE_BYTES, UNIQUE_ID_BYTES, open_reply, seal_request
from ._ntske import DEFAULT_KE_PORT, KeResult, key_exchange

__all__ = ["MAX_COOKIES", "NtsClient"]

MAX_COOKIES = 8  #: cookies kept in the jar (RFC 8915 §5.7 suggests 8)


class NtsClient:
    """Measures the local clock against an NTS-secured NTP server.

    Args:
        host: the NTS-KE server's name or address (also checked against its certificate).
        port: the NTS-KE TCP port (default 4460). The NTP server and port come from NTS-KE.
        ca_file: PEM file of CA certificates to trust (default: the system trust store).
        ke_timeout_s: how long one NTS-KE may take (s).
        node, clock, timeout_s, freq_tolerance_ppm, poll_log2, interleaved, source_address:
            as :class:`~clocksync.ntp.NtpClient`.

    No network traffic happens before the first :meth:`exchange`.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_KE_PORT,
        *,
        ca_file: str | None = None,
        node: str = "local",
        clock: Clock | None = None,
        timeout_s: float = 1.0,
        ke_timeout_s: float = 5.0,
        freq_tolerance_ppm: float = DEFAULT_FREQ_TOLERANCE_PPM,
        poll_log2: int = 0,
        interleaved: bool = True,
        source_address: str | None = None,
    ):
        if not 0 < port < 65536:
            raise NtpAddressError(f"NTS-KE port: {port} is not in 1..65535")
        if not timeout_s > 0 or not ke_timeout_s > 0:
            raise InputError(f"timeouts must be > 0, got {timeout_s!r}, {ke_timeout_s!r}")
        self.host = host
        self.port = port
        self.ca_file = ca_file
        self.ke_timeout_s = ke_timeout_s
        self._ntp_options = {
            "node": node, "clock": clock, "timeout_s": timeout_s,
            "freq_tolerance_ppm": freq_tolerance_ppm, "poll_log2": poll_log2,
            "interleaved": interleaved, "source_address": source_address,
        }
        self.interleaved = interleaved
        self._source_address = source_address
        self._ntp: NtpClient | None = None
        self._session: KeResult | None = None
        self._jar: collections.deque[bytes] = collections.deque(maxlen=MAX_COOKIES)
        self._unique_id = b""
        #: NTS failures so far, by :class:`NtsFailure` value
        self.nts_failures: collections.Counter[str] = collections.Counter()
        #: NTS-KE sessions completed, and the duration of the last one (s)
        self.key_exchanges = 0
        self.last_ke_s: float | None = None
        self._rejected: collections.Counter[str] = collections.Counter()

    # -- identity -----------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """``"nts:HOST:PORT"`` (the NTS-KE server), the ``source`` of every sample."""
        return f"nts:{self.host}:{self.port}"

    @property
    def server_address(self) -> tuple[str, int] | None:
        """The NTP server's address from NTS-KE (``None`` before the first NTS-KE)."""
        return self._ntp.server_address if self._ntp is not None else None

    @property
    def cookies(self) -> int:
        """Cookies in the jar now."""
        return len(self._jar)

    @property
    def rejected(self) -> collections.Counter[str]:
        """Every reply refused so far, by :class:`RejectReason` value (as NtpClient's)."""
        return self._ntp.rejected if self._ntp is not None else self._rejected

    # -- NTS-KE -------------------------------------------------------------------------------
    def key_exchange(self) -> KeResult:
        """Run NTS-KE now: new keys and a full jar (the old cookies are dropped).

        Raises:
            NtsKeyExchangeError: ``tls`` or ``ke`` (counted in :attr:`nts_failures`).
        """
        try:
            result = key_exchange(self.host, self.port, ca_file=self.ca_file,
                                  timeout_s=self.ke_timeout_s,
                                  source_address=self._source_address)
            self._connect(result)
        except NtsKeyExchangeError as exc:
            self.nts_failures[exc.reason.value] += 1
            raise
        self._session = result
        self._jar.clear()
        self._jar.extend(result.cookies[:MAX_COOKIES])
        self.key_exchanges += 1
        self.last_ke_s = result.duration_s
        return result

    def _connect(self, result: KeResult) -> None:
        if self._ntp is not None:
            if self._ntp.host == result.ntp_host and self._ntp.port == result.ntp_port:
                return
            self._rejected = self._ntp.rejected
            self._ntp.close()
            self._ntp = None
        try:
            client = NtpClient(result.ntp_host, result.ntp_port, auth=self,
                               **self._ntp_options)  # type: ignore[arg-type]
        except NtpAddressError as exc:
            raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE named NTP server "
                                      f"{result.ntp_host}:{result.ntp_port}: {exc}") from None
        client.rejected.update(self._rejected)
        self._ntp = client

    # -- RequestAuth (called by the NtpClient) ---------------------------------------------------
    def seal(self, request: bytes) -> bytes:
        """Spend a cookie on ``request``: Unique Identifier, cookie, placeholders, tag."""
        if self._session is None or not self._jar:
            raise NtsKeyExchangeError(NtsFailure.KE, "no NTS cookie left for this request")
        cookie = self._jar.popleft()
        self._unique_id = secrets.token_bytes(UNIQUE_ID_BYTES)
        placeholders = max(0, MAX_COOKIES - 1 - len(self._jar))
        return seal_request(request, unique_id=self._unique_id, cookie=cookie,
                            placeholders=placeholders, c2s_key=self._session.keys.c2s,
                            nonce=secrets.token_bytes(NONCE_BYTES))

    def check(self, data: bytes) -> None:
        """Accept ``data`` only as the authentic answer to the last sealed request; keep the
        cookies it brings.

        Raises:
            NtsRejectError: ``nts_unique_id``, ``nts_auth`` (ignored by the NtpClient while
                it waits), ``nts_nak`` (the jar is emptied: the next exchange runs NTS-KE).
        """
        if self._session is None:
            raise NtsRejectError(RejectReason.NTS_AUTH, "no NTS session")
        try:
            reply = open_reply(data, unique_id=self._unique_id,
                               s2c_key=self._session.keys.s2c)
        except NtsRejectError as exc:
            self.nts_failures[exc.failure.value] += 1
            if exc.reason is RejectReason.NTS_NAK:
                self._jar.clear()
            raise
        self._jar.extend(reply.cookies)

    # -- measuring ----------------------------------------------------------------------------
    def exchange(self) -> NtpMeasurement:
        """One authenticated exchange (NTS-KE first when the jar cannot pay for it).

        Raises:
            NtsKeyExchangeError: NTS-KE was needed and failed.
            NtpTimeoutError, NtpRejectError, KissOfDeathError, OSError: as
                :meth:`NtpClient.exchange`; NTS refusals are :class:`NtsRejectError`.
        """
        needed = 2 if self.interleaved else 1  # a starting interleaved chain sends two
        if self._ntp is None or len(self._jar) < needed:
            self.key_exchange()
        assert self._ntp is not None
        m = self._ntp.exchange()
        return dataclasses.replace(m, sample=dataclasses.replace(m.sample, source=self.source))

    def burst(self, count: int = 4, interval_s: float = 0.05) -> Burst:
        """``count`` exchanges ``interval_s`` apart (see :meth:`NtpClient.burst`); an NTS-KE
        failure ends the burst by raising :class:`NtsKeyExchangeError`."""
        return run_burst(self.exchange, count, interval_s)

    def close(self) -> None:
        if self._ntp is not None:
            with contextlib.suppress(OSError):
                self._ntp.close()

    def __enter__(self) -> NtsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
