"""The Redis store: one key per node holding its table JSON, with an expiry as liveness.

URL: ``redis://[[user]:password@]host:port/db`` or ``rediss://...`` (TLS), with optional
query parameters::

    prefix=NAME         key prefix (default "clocksync")
    ttl_s=SECONDS       table expiry: a node that stops publishing vanishes after this
                        (default 300; 0 = never expire)
    password_file=PATH  read the password from a file (keeps it out of URLs and ps output)
    ssl_ca_certs=PATH, ssl_certfile=PATH, ssl_keyfile=PATH, ssl_cert_reqs=required|none
                        TLS options (``rediss://`` only)

and the connection options redis-py reads from a URL (``socket_timeout``,
``health_check_interval``, ...). Any other parameter is an error listing the known ones.

Without a password in the URL or a ``password_file``, ``$CLOCKSYNC_REDIS_PASSWORD`` is used
when set.

Keys (``P`` = prefix)::

    P:table:<node>   the node's table JSON (SET ... EX ttl_s)
    P:nodes          set of node names ever published (expired ones are skipped on read)
    P:generation     counter bumped by every write (INCR), in the same MULTI/EXEC

and every write publishes the node name on channel ``P:updates``.

A reader never sees a torn table: a SET is atomic, and :meth:`RedisStore.read_all` fetches
the generation and every table in one server-side script (scripts run atomically), so the
set of tables it returns was current at one instant (single Redis instance; not Cluster).
Error messages never contain the password (:func:`redact_url`).
"""

from __future__ import annotations

import os
import time
import urllib.parse
from typing import Any

from ..._model._errors import ClockSyncError, StoreError
from ..._model._table import CorrectionTable
from ..._model._tablekey import TableKey

__all__ = ["PASSWORD_ENV", "RedisStore", "redact_url"]

PASSWORD_ENV = "CLOCKSYNC_REDIS_PASSWORD"
DEFAULT_PREFIX = "clocksync"
DEFAULT_TTL_S = 300.0
_OWN_PARAMS = ("ttl_s", "prefix", "password_file")
_TLS_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_ca_path",
               "ssl_password")
# One atomic snapshot (a script runs with no other command in between): the generation,
# then node, table-or-false pairs. Keys are derived from the prefix, so single-instance only.
_SNAPSHOT_LUA = """
local out = {redis.call('GET', KEYS[2]) or false}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = node
  out[#out + 1] = redis.call('GET', ARGV[1] .. node)
end
return out
"""


def known_parameters() -> tuple[str, ...]:
    """The query parameters a Redis store URL accepts: ours, the TLS files, and the
    connection options redis-py parses from a URL."""
    import redis.connection

    parsed = tuple(getattr(redis.connection, "URL_QUERY_ARGUMENT_PARSERS", {}))
    return tuple(dict.fromkeys(_OWN_PARAMS + _TLS_PARAMS + parsed))


def redact_url(url: str) -> str:
    """``url`` with any password (or bare user-info, which may be one) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisStore:
    """Tables in Redis (see the module docstring for URL, keys and guarantees)."""

    def __init__(self, url: str, *, ttl_s: float | None = None, prefix: str | None = None,
                 timeout_s: float = 5.0, table_key: TableKey | None = None) -> None:
        import redis

        self.table_key = table_key
        self.url = redact_url(url)
        parsed = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        known = known_parameters()
        unknown = sorted(k for k in query if k not in known)
        if unknown:
            raise StoreError(f"{self.url}: unknown parameter {unknown[0]!r} (known: "
                             f"{', '.join(known)})")
        tls = sorted(k for k in query if k.startswith("ssl_"))
        if tls and parsed.scheme != "rediss":
            raise StoreError(f"{self.url}: parameter {tls[0]!r} needs a rediss:// (TLS) URL")
        own = {k: v[-1] for k, v in query.items() if k in _OWN_PARAMS}
        rest = [(k, x) for k, v in query.items() if k not in _OWN_PARAMS for x in v]
        clean = urllib.parse.urlunsplit(parsed._replace(query=urllib.parse.urlencode(rest)))
        self.prefix = prefix if prefix is not None else own.get("prefix", DEFAULT_PREFIX)
        if not self.prefix or any(c.isspace() for c in self.prefix):
            raise StoreError(f"{self.url}: prefix: must be a non-empty word")
        try:
            ttl = float(own["ttl_s"]) if ttl_s is None and "ttl_s" in own else ttl_s
        except ValueError:
            raise StoreError(f"{self.url}: ttl_s: not a number: {own['ttl_s']!r}") from None
        self.ttl_s = DEFAULT_TTL_S if ttl is None else ttl
        if not 0 <= self.ttl_s < 1e9:
            raise StoreError(f"{self.url}: ttl_s: must be >= 0 (0 = never expire)")
        kwargs: dict[str, Any] = {"socket_timeout": timeout_s,
                                  "socket_connect_timeout": timeout_s}
        if parsed.password is None:
            password = self._password(own.get("password_file"))
            if password is not None:
                kwargs["password"] = password
        try:
            self._redis = redis.Redis.from_url(clean, decode_responses=False, **kwargs)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{self.url}: bad Redis URL ({_scrub(exc, url)})") from None
        self._tables = f"{self.prefix}:table:"
        self._nodes = f"{self.prefix}:nodes"
        self._generation = f"{self.prefix}:generation"
        self.channel = f"{self.prefix}:updates"

    def _password(self, password_file: str | None) -> str | None:
        if password_file:
            try:
                with open(password_file, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise StoreError(f"{self.url}: password_file: cannot read {password_file} "
                                 f"({exc.strerror or exc})") from None
        return os.environ.get(PASSWORD_ENV) or None

    def _fail(self, action: str, exc: Exception) -> StoreError:
        return StoreError(f"{self.url}: cannot {action}: {type(exc).__name__}: "
                          f"{_scrub(exc, self.url)}")

    # -- TableStore -------------------------------------------------------------------------
    def write(self, table: CorrectionTable) -> None:
        import redis

        text = table.to_json(self.table_key).encode("utf-8")
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                key = self._tables + table.node
                if self.ttl_s > 0:
                    pipe.set(key, text, px=max(1, round(self.ttl_s * 1000)))
                else:
                    pipe.set(key, text)
                pipe.sadd(self._nodes, table.node)
                pipe.incr(self._generation)
                pipe.publish(self.channel, table.node)
                pipe.execute()
        except redis.RedisError as exc:
            raise self._fail(f"write the table of {table.node!r}", exc) from None

    def read_all(self, errors: dict[str, str] | None = None) -> dict[str, CorrectionTable]:
        import redis

        try:
            reply = self._redis.eval(_SNAPSHOT_LUA, 2, self._nodes, self._generation,
                                     self._tables)
        except redis.RedisError as exc:
            raise self._fail("read tables", exc) from None
        tables: dict[str, CorrectionTable] = {}
        items = list(reply)[1:]
        for node_raw, value in zip(items[0::2], items[1::2], strict=True):
            node = _text(node_raw)
            if value is None:
                continue  # expired: the node stopped publishing
            try:
                tables[node] = CorrectionTable.from_json(
                    value, source=f"{self.url} key {self._tables + node}", key=self.table_key)
            except ClockSyncError as exc:
                if errors is None:
                    raise
                errors[node] = str(exc)
        return dict(sorted(tables.items()))

    def version(self) -> tuple[int, int]:
        """``(generation, live tables)``: changes on every write and when a table expires."""
        import redis

        try:
            generation = self._redis.get(self._generation)
            nodes = list(self._redis.smembers(self._nodes))
            live = int(self._redis.exists(*[self._tables + _text(n) for n in nodes])) \
                if nodes else 0
        except redis.RedisError as exc:
            raise self._fail("read the generation", exc) from None
        return int(generation or 0), live

    # -- notifications ----------------------------------------------------------------------
    def wait_for_update(self, timeout_s: float, since: Any = None) -> bool:
        """Block until a table is published (pub/sub) or ``timeout_s`` passes; True if one
        was. With ``since`` (a :meth:`version` value), return at once if the store already
        moved past it (no update is lost between a read and the subscription)."""
        import redis

        deadline = time.monotonic() + timeout_s
        try:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                if since is not None and self.version() != since:
                    return True
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    message = pubsub.get_message(timeout=left)
                    if message is not None and message.get("type") == "message":
                        return True
            finally:
                pubsub.close()
        except redis.RedisError as exc:
            raise self._fail("subscribe to updates", exc) from None

    def close(self) -> None:
        self._redis.close()


def _scrub(exc: Exception, url: str) -> str:
    """An exception's text with any password of ``url`` removed."""
    text = str(exc)
    password = urllib.parse.urlsplit(url).password
    if password:
        text = text.replace(password, "***")
        text = text.replace(urllib.parse.unquote(password), "***")
    return text


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
