"""The Redis (or Valkey) :class:`~gateway.state.SharedState`: shared by every process and replica
that uses the same server and ``key_prefix``.

Rate limits are a token bucket per key, taken atomically by a Lua script on the server's clock
(hosts' clocks never meet). Cool-down verdicts go out on a pub/sub channel; a listener task hands
other processes' verdicts to the watchers, so picking an endpoint never waits on Redis. Every call
has a short timeout and raises on failure: :class:`~gateway.state.failopen.FailOpenState` turns
failures into local fallbacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.ratelimit import effective_burst
from gateway.state import DownWatcher
from gateway.state.quota import CounterSpec, RedisQuota

log = logging.getLogger("gateway.state")

# KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns the wait in seconds as a string ("0": allowed).
TAKE_LUA = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class Verdict(msgspec.Struct, frozen=True):
    """One cool-down verdict on the channel."""

    pool: str
    url: str
    seconds: float
    error: str
    origin: str


def redacted(url: str) -> str:
    """``url`` without its credentials (for ``/ready`` and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def bucket_key(prefix: str, key: str) -> str:
    """The Redis key of ``key``'s bucket: hashed, so API keys never appear in Redis."""
    return prefix + "rl:" + hashlib.sha256(key.encode()).hexdigest()[:32]


class RedisState:
    """:class:`~gateway.state.SharedState` on Redis; every call raises on failure (see the module)."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mpr:",
        connect_timeout_s: float = 0.25,
        op_timeout_s: float = 0.2,
        max_connections: int = 32,
        listen_backoff_s: float = 0.2,
        listen_backoff_max_s: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.op_timeout_s = op_timeout_s
        self.channel = prefix + "down"
        self.origin = uuid.uuid4().hex  # this process: its own verdicts come back and are skipped
        common: dict[str, Any] = {"socket_connect_timeout": connect_timeout_s, "retry": Retry(NoBackoff(), 0)}
        # Bounded: a burst of requests waits (within op_timeout_s) for one of max_connections
        # sockets instead of opening a socket each, a connect storm that times out and fails open.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=op_timeout_s, socket_timeout=op_timeout_s, **common)
        self.client = Redis.from_pool(pool)
        self._listen_client = Redis.from_url(url, socket_timeout=None, **common)
        self._take = self.client.register_script(TAKE_LUA)
        self.quota = RedisQuota(self.client, prefix)  # tenants' token counters and usage buckets (Lua)
        self._watchers: list[DownWatcher] = []
        self._listener: asyncio.Task[None] | None = None
        self._backoff = (listen_backoff_s, listen_backoff_max_s)
        self.on_listen_error: Callable[[BaseException], None] | None = None  # the subscription failed or dropped

    async def _get(self, name: str) -> bytes | None:
        async with asyncio.timeout(self.op_timeout_s):
            value = await self.client.get(self.prefix + name)
        return bytes(value) if value is not None else None

    async def _set(self, name: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        async with asyncio.timeout(self.op_timeout_s):
            await self.client.set(self.prefix + name, value, px=max(1, int(ttl_s * 1000)))

    async def cache_get(self, key: str) -> bytes | None:
        return await self._get("cache:" + key)

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._set("cache:" + key, value, ttl_s)

    async def record_get(self, key: str) -> bytes | None:
        return await self._get("rec:" + key)

    async def record_put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._set("rec:" + key, value, ttl_s)

    async def take(self, key: str, rate: float, burst: int) -> float:
        async with asyncio.timeout(self.op_timeout_s):
            wait = await self._take(keys=[bucket_key(self.prefix, key)], args=[repr(float(rate)), effective_burst(rate, burst)])
        return float(wait)

    async def mark_down(self, pool: str, url: str, seconds: float, error: str) -> None:
        message = msgspec.json.encode(Verdict(pool, url, seconds, error, self.origin))
        async with asyncio.timeout(self.op_timeout_s):
            await self.client.publish(self.channel, message)

    async def register_put(self, node: str, record: bytes, ttl_s: float) -> None:
        async with asyncio.timeout(self.op_timeout_s):
            await self.client.set(self.prefix + "worker:" + node, record, px=max(1, int(ttl_s * 1000)))

    async def register_all(self) -> dict[str, bytes]:
        pattern = self.prefix + "worker:*"
        async with asyncio.timeout(self.op_timeout_s * 5):  # a scan and a read: a few round trips
            keys = [key async for key in self.client.scan_iter(match=pattern, count=500)]
            values = await self.client.mget(keys) if keys else []
        start = len(self.prefix + "worker:")
        return {bytes(key)[start:].decode(): bytes(value) for key, value in zip(keys, values) if value is not None}

    async def reserve(self, counters: Sequence[CounterSpec], amount: int) -> int:
        async with asyncio.timeout(self.op_timeout_s):
            return await self.quota.reserve(counters, amount)

    async def settle(self, counters: Sequence[CounterSpec], delta: int) -> None:
        async with asyncio.timeout(self.op_timeout_s):
            await self.quota.settle(counters, delta)

    async def usage_add(self, minute: int, fields: Mapping[str, int]) -> None:
        async with asyncio.timeout(self.op_timeout_s):
            await self.quota.usage_add(minute, fields)

    async def usage_since(self, first: int, last: int) -> dict[str, int]:
        async with asyncio.timeout(max(self.op_timeout_s * 10, 2.0)):  # one pipeline of up to a week of minutes
            return await self.quota.usage_since(first, last)

    async def ping(self) -> None:
        async with asyncio.timeout(self.op_timeout_s):
            await self.client.ping()

    def watch_down(self, watcher: DownWatcher) -> None:
        self._watchers.append(watcher)
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="mpr-state-listener")

    def dispatch(self, data: bytes) -> None:
        """Hand a channel message to the watchers (own verdicts and malformed messages skipped)."""
        try:
            verdict = msgspec.json.decode(data, type=Verdict)
        except msgspec.DecodeError:
            log.warning("ignored a malformed message on %s", self.channel)
            return
        if verdict.origin == self.origin:
            return
        for watcher in self._watchers:
            watcher(verdict.pool, verdict.url, verdict.seconds, verdict.error)

    async def _listen(self) -> None:
        """Subscribe and dispatch, forever; resubscribe with backoff when the connection drops."""
        first, cap = self._backoff
        delay = first
        while True:
            pubsub = self._listen_client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                delay = first
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: resubscribe later
                log.debug("state listener: %s: %s; resubscribing in %.1fs", type(exc).__name__, exc, delay)
                if self.on_listen_error is not None:
                    self.on_listen_error(exc)
            finally:
                try:
                    await asyncio.wait_for(pubsub.aclose(), 1.0)
                except Exception:  # noqa: BLE001 - the connection is gone anyway
                    pass
            await asyncio.sleep(delay)
            delay = min(cap, delay * 2)

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": redacted(self.url), "key_prefix": self.prefix}

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self.client.aclose()
        await self._listen_client.aclose()
