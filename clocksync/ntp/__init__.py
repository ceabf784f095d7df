"""NTP source: packet codec, client with kernel timestamps, server, probe, NTS client.

Modules: ``_packet`` (pure codec and reply validation), ``_exchange`` (pure offset/delay/bound
arithmetic), ``_poll`` (pure adaptive poll policy), ``_ntsrecords`` and ``_ntsfields`` (pure
NTS-KE record and NTS extension-field codecs), ``_client``, ``_server``, ``_probe``,
``_ntske`` (NTS-KE over TLS) and ``_nts`` (the NTS client).
"""

from ._client import Burst, NtpClient, NtpMeasurement, RequestAuth
from ._errors import (
    KissOfDeathError,
    NtpAddressError,
    NtpDecodeError,
    NtpRejectError,
    NtpTimeoutError,
    NtsFailure,
    NtsKeyExchangeError,
    NtsRejectError,
    RejectReason,
)
from ._exchange import STAMP_ERROR_NS, Exchange, exchange_bound_ns, select_min_delay
from ._nts import MAX_COOKIES, NtsClient
from ._ntsfields import (
    ExtensionField,
    FieldType,
    NtsReply,
    decode_fields,
    encode_fields,
    open_reply,
    seal_request,
)
from ._ntske import DEFAULT_KE_PORT, KeResult, NtsKeys, check_certificate_name, key_exchange
from ._ntsrecords import (
    AEAD_AES_SIV_CMAC_256,
    KeRecord,
    KeResponse,
    RecordType,
    decode_records,
    encode_records,
    ke_request,
    parse_ke_response,
)
from ._packet import NtpPacket, decode, encode, ns_to_ntp, ntp_to_ns, validate_reply
from ._poll import PollPolicy
from ._probe import (
    ProbeSummary,
    iter_probe,
    measurement_record,
    parse_target,
    probe,
    summarize,
)
from ._server import NtpServer, ServerStats

__all__ = [
    "AEAD_AES_SIV_CMAC_256",
    "DEFAULT_KE_PORT",
    "MAX_COOKIES",
    "STAMP_ERROR_NS",
    "Burst",
    "Exchange",
    "ExtensionField",
    "FieldType",
    "KeRecord",
    "KeResponse",
    "KeResult",
    "KissOfDeathError",
    "NtpAddressError",
    "NtpClient",
    "NtpDecodeError",
    "NtpMeasurement",
    "NtpPacket",
    "NtpRejectError",
    "NtpServer",
    "NtpTimeoutError",
    "NtsClient",
    "NtsFailure",
    "NtsKeyExchangeError",
    "NtsKeys",
    "NtsRejectError",
    "NtsReply",
    "PollPolicy",
    "ProbeSummary",
    "RecordType",
    "RejectReason",
    "RequestAuth",
    "ServerStats",
    "check_certificate_name",
    "decode",
    "decode_fields",
    "decode_records",
    "encode",
    "encode_fields",
    "encode_records",
    "exchange_bound_ns",
    "iter_probe",
    "ke_request",
    "key_exchange",
    "measurement_record",
    "ns_to_ntp",
    "ntp_to_ns",
    "open_reply",
    "parse_ke_response",
    "parse_target",
    "probe",
    "seal_request",
    "select_min_delay",
    "summarize",
    "validate_reply",
]
