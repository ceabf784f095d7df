"""NTS Key Establishment over TLS 1.3 (RFC 8915 §4), with pyOpenSSL.

One call, :func:`key_exchange`: TCP to the NTS-KE port (``TCP_NODELAY``: the request is one
small write that must not wait for Nagle), TLS 1.3 only, ALPN ``ntske/1``, the server's
certificate chain verified against the system trust store or a given CA file, and its host
name or IP address checked against the certificate's subjectAltName here (OpenSSL checks the
chain only). Then our request records, the server's records until End of Message, and the
two keys from the TLS exporter: label ``EXPORTER-network-time-security``, context
``protocol id (0) | AEAD id (15) | 0x00`` for client-to-server and ``... | 0x01`` for
server-to-client, 32 octets each.

No TLS or cipher code lives here: OpenSSL does all of it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._model._errors import InputError
from ._errors import NtsFailure, NtsKeyExchangeError
from ._ntsrecords import (
    AEAD_AES_SIV_CMAC_256,
    PROTOCOL_NTPV4,
    KeResponse,
    decode_records,
    ke_request,
    parse_ke_response,
    split_record,
)

if TYPE_CHECKING:
    from cryptography import x509
    from OpenSSL import SSL

__all__ = [
    "DEFAULT_KE_PORT",
    "DEFAULT_NTP_PORT",
    "EXPORTER_LABEL",
    "KeResult",
    "NtsKeys",
    "key_exchange",
]

DEFAULT_KE_PORT = 4460  #: IANA port of NTS-KE (TCP)
DEFAULT_NTP_PORT = 123  #: the NTP port when the server sends no port record
EXPORTER_LABEL = b"EXPORTER-network-time-security"
ALPN = b"ntske/1"
MAX_RESPONSE_BYTES = 65_536  #: a longer NTS-KE answer is refused
_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class NtsKeys:
    """The two AES-SIV-CMAC-256 keys of one NTS-KE session (32 octets each)."""

    c2s: bytes
    s2c: bytes

    def __repr__(self) -> str:  # never print key material
        return "NtsKeys(<secret>)"


@dataclass(frozen=True, slots=True)
class KeResult:
    """One completed NTS-KE.

    Attributes:
        keys: client-to-server and server-to-client keys.
        cookies: the server's new cookies.
        ntp_host, ntp_port: where to send NTS-protected NTP requests.
        duration_s: wall time of the whole exchange (connect to last record), seconds.
        warnings: warning codes the server sent.
    """

    keys: NtsKeys
    cookies: tuple[bytes, ...]
    ntp_host: str
    ntp_port: int
    duration_s: float
    warnings: tuple[int, ...] = ()

    def __repr__(self) -> str:
        return (f"KeResult(ntp={self.ntp_host}:{self.ntp_port}, cookies={len(self.cookies)}, "
                f"duration_s={self.duration_s:.6f})")


def _host_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching of a DNS name, with a wildcard only as the whole leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:] and "." in rest
    return pattern == host


def check_certificate_name(cert: x509.Certificate, host: str) -> None:
    """Raise unless ``host`` (a DNS name or IP literal) is in the certificate's
    subjectAltName (DNS names for names, IP addresses for addresses; no CN fallback)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise NtsKeyExchangeError(NtsFailure.TLS, "NTS-KE server certificate has no "
                                  "subjectAltName") from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        names = san.get_values_for_type(x509.DNSName)
        if any(_host_matches(n, host) for n in names):
            return
        raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE server certificate is not for "
                                  f"{host!r} (DNS names {names})") from None
    ips = san.get_values_for_type(x509.IPAddress)
    if address not in ips:
        raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE server certificate is not for "
                                  f"{host} (IP addresses {[str(i) for i in ips]})")


def _context(ca_file: str | None) -> SSL.Context:
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_alpn_protos([ALPN])
    ctx.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _errno, _depth, ok: bool(ok))
    try:
        if ca_file:
            ctx.load_verify_locations(ca_file)
        else:
            ctx.set_default_verify_paths()
    except SSL.Error as exc:
        raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS CA file {ca_file!r}: cannot load "
                                  f"({exc})") from None
    return ctx


class _Io:
    """Drives a pyOpenSSL connection over a non-blocking socket until a deadline."""

    def __init__(self, conn: SSL.Connection, sock: socket.socket, deadline: float):
        from OpenSSL import SSL

        self.conn, self.sock, self.deadline = conn, sock, deadline
        self.ssl = SSL

    def _wait(self, write: bool) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("NTS-KE timed out")
        fds = [self.sock]
        select.select([] if write else fds, fds if write else [], [], left)

    def handshake(self) -> None:
        while True:
            try:
                self.conn.do_handshake()
                return
            except self.ssl.WantReadError:
                self._wait(False)
            except self.ssl.WantWriteError:
                self._wait(True)

    def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.conn.send(bytes(view)):]
            except self.ssl.WantReadError:
                self._wait(False)
            except self.ssl.WantWriteError:
                self._wait(True)

    def recv(self) -> bytes:
        while True:
            try:
                return bytes(self.conn.recv(16_384))
            except self.ssl.WantReadError:
                self._wait(False)
            except self.ssl.WantWriteError:
                self._wait(True)
            except self.ssl.ZeroReturnError:
                return b""


def _read_response(io: _Io) -> bytes:
    data = b""
    offset = 0
    while True:
        got = split_record(data[offset:])
        if got is not None:
            record, used = got
            offset += used
            if record.type == 0:
                return data[:offset]
            continue
        if len(data) > MAX_RESPONSE_BYTES:
            raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE answer over "
                                      f"{MAX_RESPONSE_BYTES} octets")
        try:
            chunk = io.recv()
        except io.ssl.SysCallError:
            chunk = b""
        if not chunk:
            raise NtsKeyExchangeError(NtsFailure.KE, "NTS-KE server closed the connection "
                                      "before End of Message")
        data += chunk


def _export(conn: SSL.Connection, direction: int) -> bytes:
    context = struct.pack("!HHB", PROTOCOL_NTPV4, AEAD_AES_SIV_CMAC_256, direction)
    return bytes(conn.export_keying_material(EXPORTER_LABEL, _KEY_BYTES, context))


def key_exchange(host: str, port: int = DEFAULT_KE_PORT, *, ca_file: str | None = None,
                 timeout_s: float = 5.0, source_address: str | None = None) -> KeResult:
    """Run NTS-KE with ``host:port``; return keys, cookies and the NTP server to use.

    ``ca_file``: PEM file of trusted CA certificates (default: the system trust store).
    ``source_address``: local address to connect from (default: chosen by the kernel).

    Raises:
        NtsKeyExchangeError: ``tls`` — cannot connect, handshake failed, not TLS 1.3, no
            ALPN ``ntske/1``, untrusted chain, or a certificate not for ``host``; ``ke`` —
            the records were refused or malformed (see :func:`parse_ke_response`).
    """
    try:  # the optional "nts" extra (the package loads without it); imported before the
        from cryptography import x509  # noqa: F401 - clock starts: a first import takes ms
        from OpenSSL import SSL
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("NTS needs pyOpenSSL and cryptography: pip install "
                         "'clocksync[nts]'") from None
    started = time.monotonic()
    deadline = started + timeout_s
    ctx = _context(ca_file)
    try:
        sock = socket.create_connection(
            (host, port), timeout=timeout_s,
            source_address=(source_address, 0) if source_address else None)
    except (OSError, UnicodeError) as exc:
        raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE {host}:{port}: cannot connect "
                                  f"({exc})") from None
    with contextlib.closing(sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = SSL.Connection(ctx, sock)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            conn.set_tlsext_host_name(host.encode("idna"))
        conn.set_connect_state()
        io = _Io(conn, sock, deadline)
        try:
            io.handshake()
            if conn.get_protocol_version_name() != "TLSv1.3":
                raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE {host}:{port}: "
                                          f"{conn.get_protocol_version_name()}, not TLSv1.3")
            if conn.get_alpn_proto_negotiated() != ALPN:
                raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE {host}:{port}: server did "
                                          "not agree to ALPN ntske/1")
            cert = conn.get_peer_certificate(as_cryptography=True)
            if cert is None:
                raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE {host}:{port}: no "
                                          "server certificate")
            check_certificate_name(cert, host)
        except (SSL.Error, OSError) as exc:
            raise NtsKeyExchangeError(NtsFailure.TLS, f"NTS-KE {host}:{port}: TLS handshake "
                                      f"failed ({_describe(exc)})") from None
        try:
            io.send_all(ke_request())
            response = parse_ke_response(decode_records(_read_response(io)))
            keys = NtsKeys(_export(conn, 0), _export(conn, 1))
        except (SSL.Error, OSError) as exc:
            raise NtsKeyExchangeError(NtsFailure.KE, f"NTS-KE {host}:{port}: "
                                      f"{_describe(exc)}") from None
        with contextlib.suppress(SSL.Error, OSError):
            conn.shutdown()
    return _result(keys, response, host, time.monotonic() - started)


def _result(keys: NtsKeys, response: KeResponse, host: str, duration_s: float) -> KeResult:
    return KeResult(keys, response.cookies, response.server or host,
                    response.port or DEFAULT_NTP_PORT, duration_s, response.warnings)


def _describe(exc: BaseException) -> str:
    from OpenSSL import SSL

    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        reasons = [str(item[2]) for item in exc.args[0] if len(item) > 2]
        if reasons:
            return "; ".join(reasons)
    return str(exc) or type(exc).__name__
