"""Table integrity: an HMAC-SHA256 key shared by the agents that publish tables and the
correctors that read them, so one rogue writer to a shared store cannot shift everyone's
corrections.

A signed table is the table's JSON object with one more top-level field::

    "signature": {"alg": "hmac-sha256", "key_id": "<8 hex>", "mac": "<64 hex>"}

``mac`` is HMAC-SHA256 over the *canonical* JSON of the object without ``signature``
(``json.dumps`` with ``separators=(",", ":")``, ASCII, no NaN, keys in document order), so a
store or proxy that re-indents the JSON does not break it, and any changed value does.
``key_id`` (the first 4 bytes of SHA-256 of the key) only tells an operator which key
signed — it is not secret and never checked as proof. Readers without a key ignore the field;
a reader with a key refuses tables that are unsigned, signed with another key, or altered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from ._errors import InputError, SignatureError

__all__ = ["MIN_KEY_BYTES", "SIGNATURE_FIELD", "TableKey", "sign_table",
           "verify_table"]

SIGNATURE_FIELD = "signature"
#: shortest accepted key (bytes after stripping whitespace): 128 bits
MIN_KEY_BYTES = 16
_ALG = "hmac-sha256"


@dataclass(frozen=True, slots=True)
class TableKey:
    """A shared secret; its ``repr`` shows only :attr:`key_id`, never the secret."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise InputError(f"table key: must be at least {MIN_KEY_BYTES} bytes, got "
                             f"{len(self.secret)}")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:8]

    def mac(self, obj: dict[str, Any]) -> str:
        return hmac.new(self.secret, _canonical(obj), hashlib.sha256).hexdigest()


def _canonical(obj: dict[str, Any]) -> bytes:
    body = {k: v for k, v in obj.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")


def sign_table(obj: dict[str, Any], key: TableKey) -> dict[str, Any]:
    """``obj`` (a table's JSON object) with its ``signature`` field set."""
    body = {k: v for k, v in obj.items() if k != SIGNATURE_FIELD}
    return {**body, SIGNATURE_FIELD: {"alg": _ALG, "key_id": key.key_id, "mac": key.mac(body)}}


def verify_table(obj: Any, key: TableKey, source: str) -> None:
    """Raise :class:`SignatureError` (naming ``source``) unless ``obj`` is signed by ``key``."""
    if not isinstance(obj, dict):
        return  # not a table at all: the schema check names it
    sig = obj.get(SIGNATURE_FIELD)
    if sig is None:
        raise SignatureError(f"{source}: table is not signed, but a table key is configured "
                             "(refused: anyone who can write the store could have made it)")
    if not isinstance(sig, dict) or sig.get("alg") != _ALG or not isinstance(
            sig.get("mac"), str):
        raise SignatureError(f"{source}: field 'signature': expected an {_ALG} signature "
                             "object with 'mac'")
    try:
        expected = key.mac(obj)
    except ValueError:  # NaN in the body: not a table we could have signed
        raise SignatureError(f"{source}: field 'signature': does not match the table") from None
    if not hmac.compare_digest(expected, sig["mac"]):
        other = sig.get("key_id")
        hint = (f" (signed with key {other}, ours is {key.key_id})"
                if isinstance(other, str) and other != key.key_id else "")
        raise SignatureError(f"{source}: field 'signature': does not match the table — "
                             f"altered or signed with another key{hint}")
