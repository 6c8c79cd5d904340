"""Calls to a target LLM: endpoint choice, one retry before any byte reached the client, errors.

Connection failures (refused, reset, connect timeout, dropped before the answer) cool the
endpoint down and are retried once on another endpoint. A read timeout is a 504 and not retried
here: the target may still be generating. Retries of whole calls and fallbacks to other targets,
by policy, are :mod:`gateway.upstream.router`'s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from gateway.config.models import TargetConfig
from gateway.errors import UpstreamTimeout, UpstreamUnreachable
from gateway.upstream.http import relay_headers
from gateway.upstream.pool import Endpoint, EndpointPool
from gateway.upstream.wire import ConnectTimeout, Disconnected, Response, Session, Timeout, WireError
from gateway.telemetry import annotate_endpoint

_CONNECTION_ERRORS = (WireError, ConnectionError)  # refused, reset, dropped, not HTTP (after the timeouts)


@dataclass(slots=True)
class TargetReply:
    """The target's answer: a complete body, or an open streaming response to relay."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    response: Response | None = None
    endpoint: Endpoint | None = None
    pool: EndpointPool | None = field(default=None, repr=False)
    url: str | None = None  # the endpoint (replica) that answered

    def finish(self, *, abort: bool = False) -> None:
        """Release the endpoint slot; ``abort`` closes the connection (client gone)."""
        if self.response is not None:
            if abort:
                self.response.close()
            else:
                self.response.release()
            self.response = None
        if self.pool is not None and self.endpoint is not None:
            self.pool.release(self.endpoint)
            self.pool = None


class TargetClient:
    """Sends chat completion requests to one target's endpoints."""

    def __init__(self, config: TargetConfig, pool: EndpointPool, session: Session) -> None:
        self.config = config
        self.pool = pool
        self.session = session
        self._timeout = Timeout(connect=config.connect_timeout_s, read=config.timeout_s)
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self._base_headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if key:
            self._base_headers["authorization"] = f"Bearer {key}"

    async def send(
        self,
        body: bytes,
        *,
        stream: bool,
        extra_headers: dict[str, str] | None = None,
        path: str = "/chat/completions",
        affinity: int | None = None,
        pin: str | None = None,
    ) -> TargetReply:
        """POST ``path`` (under the endpoint's ``/v1``); streaming replies come back open (call ``finish``).
        ``affinity``: the request's affinity key hash (``balance: affinity``); ``pin``: the one
        endpoint URL that may answer (the replica that stored a response being continued)."""
        headers = {**self._base_headers, **extra_headers} if extra_headers else self._base_headers
        tried: list[Endpoint] = []
        last_error = reason = "no endpoint configured"  # last_error (with URLs) for /ready, reason for the client
        retry_same: Endpoint | None = None
        pinned = self._pinned(pin) if pin is not None else None
        for attempt in range(2):
            if pinned is not None:
                endpoint = pinned if attempt == 0 else retry_same
            else:
                endpoint = self.pool.pick(exclude=tried, affinity=affinity) or retry_same
            if endpoint is None:
                break
            retry_same = None
            tried.append(endpoint)
            annotate_endpoint(endpoint.url)  # server.address/port on the target span (tracing on)
            self.pool.acquire(endpoint)
            response: Response | None = None
            started = time.perf_counter()
            try:
                response = await self.session.post(
                    endpoint.url + path, data=body, headers=headers, timeout=self._timeout
                )
                if stream and response.status == 200:
                    self.pool.observe(endpoint, time.perf_counter() - started)  # time to the response headers
                    self.pool.mark_success(endpoint)
                    return TargetReply(
                        200, relay_headers(response.headers), response=response, endpoint=endpoint, pool=self.pool, url=endpoint.url
                    )
                payload = await response.read()
            except ConnectTimeout:
                last_error, reason = f"connect timeout to {endpoint.url}", "connect timeout"
            except TimeoutError:
                self.pool.release(endpoint)
                if response is not None:
                    response.close()
                raise UpstreamTimeout(f"the target {self.config.name!r} did not answer within {self.config.timeout_s:g}s") from None
            except _CONNECTION_ERRORS as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                reason = type(exc).__name__
                if attempt == 0 and response is None and (pinned is not None or len(self.pool.endpoints) == 1) and _maybe_stale(exc):
                    # The only endpoint dropped the connection before answering, as a target does
                    # when it closes a pooled keep-alive connection: retry once on a fresh one
                    # instead of failing (with several endpoints the retry goes to another one).
                    self.pool.release(endpoint)
                    retry_same = endpoint
                    continue
            except BaseException:
                self.pool.release(endpoint)
                if response is not None:
                    response.close()
                raise
            else:
                self.pool.release(endpoint, time.perf_counter() - started)
                response.release()
                if response.status < 500:
                    self.pool.mark_success(endpoint)
                return TargetReply(response.status, relay_headers(response.headers), body=payload, url=endpoint.url)
            self.pool.release(endpoint)
            if response is not None:
                response.close()
            self.pool.mark_failure(endpoint, last_error)
        if pinned is not None:
            raise UpstreamUnreachable(f"the replica of target {self.config.name!r} that stored this response is unreachable ({reason})")
        raise UpstreamUnreachable(f"the target {self.config.name!r} is unreachable ({reason})")

    def _pinned(self, url: str) -> Endpoint:
        """The endpoint with ``url``; a 502 saying so when it is no longer one of the target's."""
        endpoint = self.pool.pinned(url)
        if endpoint is None:
            raise UpstreamUnreachable(
                f"the replica of target {self.config.name!r} that stored this response is no longer one of its endpoints"
            )
        return endpoint


def _maybe_stale(exc: BaseException) -> bool:
    """A connection dropped after it was established and before any byte of the answer (not a
    refused or failed connect)."""
    return isinstance(exc, Disconnected) and not exc.answered
