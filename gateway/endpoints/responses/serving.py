"""``POST /v1/responses`` (refine the last user input, forward natively, relay) and the by-id
routes ``GET /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel``, ``DELETE /v1/responses/{id}``
and ``GET /v1/responses/{id}/input_items``, passed through to the target that served the response.

Who created a response and which target stores it is recorded (:mod:`.owners`: this process's
LRU and the shared state, so every replica agrees). A response belongs to the tenant that created
it: another tenant's ``GET``/``DELETE``/``cancel``/``input_items`` or ``previous_response_id`` is
OpenAI's 404 and never reaches a target, and so is an id whose target the key may not use. An id
of unknown owner is a 404 too while tenant keys exist; in a single trust domain (bare keys, or no
keys) it is asked of every native target (``api: responses``) the key may use, in config order;
the first answer that is not a 404 wins; when all say 404 the client gets an OpenAI 404 error, and
when some could not be asked, the last such error (502/504).
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.response import Stream

from gateway.endpoints.common import authorize, decode_object, serve_litestar
from gateway.endpoints.proxied import require_model, require_target, stream_flag, upstream_body
from gateway.endpoints.refinement_run import OFF, PromptRefinement, RefinementRun
from gateway.endpoints.relay import Exchange, Reply, complete_body, exchange, require_json, require_sse, send, with_details
from gateway.tenants.usage import NOT_JSON
from gateway.endpoints.responses.bridge import ChatStreamTranslator, from_chat, to_chat
from gateway.endpoints.routing_keys import responses_affinity
from gateway.endpoints.responses.owners import Owner, ResponseIndex, ResponseOwners, access
from gateway.endpoints.responses.protocol import StreamWatch, input_turns, present_input, validate_input
from gateway.errors import GatewayError, InvalidRequest, NotFound, UpstreamCredentialRefused, UpstreamTimeout, UpstreamUnreachable
from gateway.refinement.controls import RefineControls, parse_controls
from gateway.runtime import Runtime
from gateway.telemetry import TargetCall
from gateway.telemetry.middleware import MODEL_KEY, REFINE_KEY
from gateway.upstream.errors import openai_error_body
from gateway.upstream.http import relay_headers
from gateway.upstream.router import CREDENTIAL_REFUSED, TARGET_HEADER, route_headers_of
from gateway.upstream.wire import ConnectTimeout, Timeout, WireError
from gateway.upstream.target import TargetClient, TargetReply
from gateway.tenants.gate import tenant_headers
from gateway.tenants.meter import current_partition, current_tenant, stream_meter
from gateway.tenants.partition import partition_of
from gateway.tenants.policy import may_use

log = logging.getLogger("gateway.responses")

JSON = "application/json"
SSE = "text/event-stream"

_INDEXES: dict[int, ResponseIndex] = {}


def index_for(runtime: Runtime) -> ResponseIndex:
    """The runtime's one :class:`ResponseIndex` (the fast path's and the Litestar routes' serving
    objects share it); dropped with the runtime."""
    key = id(runtime)
    index = _INDEXES.get(key)
    if index is None:
        index = _INDEXES[key] = ResponseIndex()
        weakref.finalize(runtime, _INDEXES.pop, key, None)
    return index


def carry_index(old: Runtime, new: Runtime) -> None:
    """Let ``new`` (a reloaded runtime) share ``old``'s index: responses created before a reload
    stay reachable by id."""
    key = id(new)
    _INDEXES[key] = index_for(old)
    weakref.finalize(new, _INDEXES.pop, key, None)


RESPONSE_ID = re.compile(r"[A-Za-z0-9_\-]{1,256}")
"""What a response id may be (OpenAI's and vLLM's: ``resp_`` and letters, digits, ``_``, ``-``)."""


def previous_not_found(response_id: str) -> InvalidRequest:
    """OpenAI's answer for a ``previous_response_id`` the caller may not continue (as for one that
    does not exist): 400 ``previous_response_not_found``."""
    return InvalidRequest(f"Previous response with id '{response_id}' not found.", param="previous_response_id", code="previous_response_not_found")


def response_not_found(response_id: str) -> NotFound:
    """OpenAI's 404 for a response id the caller may not see (the same for one that does not exist)."""
    return NotFound(f"No response found with id '{response_id}'.", param="response_id")


def _response_id(content: bytes) -> str | None:
    try:
        data = msgspec.json.decode(content)
    except (msgspec.DecodeError, RecursionError):
        return None
    rid = data.get("id") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) and rid else None


class Responses:
    """Serving logic for the Responses API, bound to one :class:`Runtime`."""

    error_headers = OFF.headers  # on the gateway's own errors before refinement ran

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.refinement = PromptRefinement(runtime)
        self.owners = ResponseOwners(runtime.state, index_for(runtime))

    # -- POST /v1/responses --------------------------------------------------------------------

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        """The Litestar route (the fast path serves the usual ``POST /v1/responses``; both share
        :meth:`process`)."""
        return await serve_litestar(self.runtime, self.process, request)

    async def process(self, raw: bytes, header: Callable[[str], str | None], scope: Any, receive: Any) -> Reply:
        """Serve an authorized request whose body is ``raw``. Errors raise :class:`GatewayError` /
        :class:`ClientDisconnected`."""
        runtime = self.runtime
        payload = decode_object(raw)
        model = require_model(payload)
        validate_input(payload.get("input"), runtime.config.server.max_messages)
        target = require_target(runtime, model)
        scope[MODEL_KEY] = model
        had_mpr = "mpr" in payload  # even `"mpr": null` must not reach the target
        controls = parse_controls(header, payload.pop("mpr", None))
        stream = stream_flag(payload)
        pin = await self._may_continue(payload.get("previous_response_id"), model)
        bridged = target.config.api == "chat"
        if bridged:  # what the bridge cannot translate is a 400 before any refinement
            to_chat(payload, target.config.model_for_upstream)
        forward = self._forward(raw, payload, target, model, controls, had_mpr, stream, pin)
        reply, call, run = await exchange(forward, receive, stream)
        if run.mode == "apply" and run.outcome is not None:
            scope[REFINE_KEY] = run.outcome.elapsed_ms / 1000.0
        served_by = reply.headers.get(TARGET_HEADER, target.config.name)
        if bridged:
            return self._respond_bridged(reply, call, run, controls, payload, served_by)
        return await self._respond(reply, call, run, controls, payload, served_by)

    async def _may_continue(self, previous: Any, model: str) -> str | None:
        """A ``previous_response_id`` of another tenant (or of unknown owner while tenant keys
        exist) is a 404: its conversation never becomes this caller's context. Returns the replica
        the continuation must reach (the one that stored it, when it is on the requested target)."""
        if not isinstance(previous, str) or not previous:
            return None
        tenant = current_tenant()
        owner = await self.owners.owner(previous)
        verdict = access(owner, partition_of(tenant), owner is None or may_use(tenant, owner.target), self.runtime.auth.isolating)
        if verdict == "not_found":
            raise previous_not_found(previous)
        return owner.endpoint if owner is not None and owner.target == model else None

    async def _forward(
        self,
        raw: bytes,
        payload: dict[str, Any],
        target: TargetClient,
        model: str,
        controls: RefineControls,
        had_mpr: bool,
        stream: bool,
        pin: str | None,
    ) -> Exchange:
        """Refine (or start a shadow refinement), then send through the runtime's router (retries
        and fallbacks; a continuation to ``pin``, the replica that stored its previous response)."""
        config = target.config
        router = self.runtime.router
        assert router is not None
        affinity = responses_affinity(payload, current_partition()) if pin is None and model in router.affine else None
        slots, new = input_turns(payload.get("input"))
        run, shown = await self.refinement.converse([slot.text for slot in slots], new, model, controls, config)
        presented = [(slot, p) for slot, p in zip(slots, shown) if p is not None]
        if presented:
            present_input(payload, presented, self.runtime.config.refinement.describer.placement)
        if config.api == "chat":  # bridged: the chat completions request for it
            sent, path = to_chat(payload, config.model_for_upstream), "/chat/completions"
            body = msgspec.json.encode(sent)
        else:
            sent, path = payload, "/responses"
            body = upstream_body(raw, payload, model, config, changed=had_mpr or bool(presented))
        reply, call = await send(self.runtime, model, body, sent, stream=stream, path=path, run=run, affinity=affinity, pin=pin)
        return reply, call, run

    async def _respond(
        self,
        reply: TargetReply,
        call: TargetCall,
        run: RefinementRun,
        controls: RefineControls,
        payload: dict[str, Any],
        served_by: str,
    ) -> Reply:
        """The target's Response (its id and owner recorded), error, or relayed event stream."""
        headers = {**run.headers, **route_headers_of(reply.headers)}
        if reply.response is not None:
            require_sse(reply, call, headers)
            watch = StreamWatch(str(payload.get("model") or ""))
            relay = self._relay(reply, call, watch, Owner(partition_of(current_tenant()), served_by, reply.url), payload, run)
            return 200, {**reply.headers, **headers, "cache-control": "no-cache"}, relay, SSE
        content, answer = complete_body(reply, call, headers)
        media_type = reply.headers.pop("content-type", JSON)
        if reply.status >= 400:
            return reply.status, {**reply.headers, **headers}, openai_error_body(reply.status, content, media_type), JSON
        require_json(reply.status, media_type, answer is not NOT_JSON, headers)
        if (rid := _response_id(content)) is not None:
            await self.owners.record(rid, Owner(partition_of(current_tenant()), served_by, reply.url))
        if controls.return_details and run.outcome is not None and reply.status == 200:
            content = with_details(content, run.outcome, run.mode)
        return reply.status, {**reply.headers, **headers}, content, media_type

    def _respond_bridged(
        self,
        reply: TargetReply,
        call: TargetCall,
        run: RefinementRun,
        controls: RefineControls,
        payload: dict[str, Any],
        served_by: str,
    ) -> Reply:
        """A chat completions answer as a Response, or its stream as Responses events."""
        headers = {**run.headers, **route_headers_of(reply.headers)}
        config = self.runtime.config.target(served_by)
        upstream_model = config.model_for_upstream if config is not None else str(payload.get("model") or "")
        if reply.response is not None:
            require_sse(reply, call, headers)
            relay = self._translate(reply, call, ChatStreamTranslator(payload, upstream_model), run)
            return 200, {**reply.headers, **headers, "cache-control": "no-cache"}, relay, SSE
        content, answer = complete_body(reply, call, headers)
        media_type = reply.headers.pop("content-type", JSON)
        if reply.status >= 400:
            return reply.status, {**reply.headers, **headers}, openai_error_body(reply.status, content, media_type), JSON
        completion = answer if media_type.startswith(JSON) else None  # decoded once (NOT_JSON: not JSON)
        if not isinstance(completion, dict):
            raise UpstreamUnreachable("the target answered with something that is not a chat completion", headers=headers)
        response = from_chat(completion, payload)
        if controls.return_details and run.outcome is not None:
            response["mpr"] = {**run.outcome.details(), "mode": run.mode}
        return reply.status, {**reply.headers, **headers}, msgspec.json.encode(response), JSON

    @staticmethod
    async def _translate(reply: TargetReply, call: TargetCall, translator: ChatStreamTranslator, run: RefinementRun) -> AsyncIterator[bytes]:
        """Chat completion chunks in, Responses events out, as they arrive; a stream that breaks or
        ends without ``[DONE]`` ends with ``response.failed``."""
        response = reply.response
        assert response is not None
        aborted = True
        usage = stream_meter()  # the tenant's usage (the chat stream's usage chunk)
        try:
            yield translator.start()
            try:
                async for chunk in response.iter_any():
                    if usage is not None:
                        usage.feed(chunk)
                    if out := translator.feed(chunk):
                        yield out
                if not translator.done:
                    call.fail("stream_incomplete")
                    yield translator.fail("the target closed the stream before the response completed")
                aborted = False
            except (WireError, TimeoutError, ConnectionError) as exc:
                log.warning("target stream broke: %s", type(exc).__name__)
                call.fail("stream_broken")
                yield translator.fail(f"the target stream broke ({type(exc).__name__})")
                aborted = False
        finally:
            reply.finish(abort=aborted)
            call.finish_stream(aborted=aborted)
            if aborted and run.shadow is not None:
                run.shadow.cancel()

    async def _relay(
        self,
        reply: TargetReply,
        call: TargetCall,
        watch: StreamWatch,
        owner: Owner,
        request: dict[str, Any],
        run: RefinementRun,
    ) -> AsyncIterator[bytes]:
        """Relay the target's SSE bytes as they arrive (the response's owner recorded as soon as
        its id shows); a stream that breaks or ends without a terminal event ends with a
        ``response.failed`` event."""
        response = reply.response
        assert response is not None
        aborted = True
        recorded = False
        usage = stream_meter()  # the tenant's usage (response.completed)
        try:
            try:
                async for chunk in response.iter_any():
                    watch.feed(chunk)
                    if not recorded and watch.response_id is not None:
                        recorded = True
                        await self.owners.record(watch.response_id, owner)
                    if usage is not None:
                        usage.feed(chunk)
                    yield chunk
                if not watch.terminal:
                    call.fail("stream_incomplete")
                    yield watch.failure("the target closed the stream before the response completed", request)
                aborted = False
            except (WireError, TimeoutError, ConnectionError) as exc:
                log.warning("target stream broke: %s", type(exc).__name__)
                call.fail("stream_broken")
                yield watch.failure(f"the target stream broke ({type(exc).__name__})", request)
                aborted = False
        finally:
            if not recorded and watch.response_id is not None:
                self.owners.index.remember(watch.response_id, owner)  # at least this process knows it
            reply.finish(abort=aborted)
            call.finish_stream(aborted=aborted)
            if aborted and run.shadow is not None:
                run.shadow.cancel()

    # -- /v1/responses/{id}[...] ------------------------------------------------------------------

    async def by_id(self, request: Request[Any, Any, Any], response_id: str, method: str, suffix: str = "") -> Response[bytes]:
        """Pass ``method /v1/responses/{id}{suffix}`` (query string included) through to the
        target that stores the response, for its owner only (see the module docstring)."""
        tenant = await authorize(self.runtime, request)
        if not RESPONSE_ID.fullmatch(response_id):  # `..`, `%2e%2e`, `?`: never a path upstream
            raise InvalidRequest(f"Invalid 'response_id': {response_id[:64]!r}.", param="response_id")
        query = request.scope.get("query_string", b"").decode("latin-1")
        path = f"/responses/{response_id}{suffix}" + (f"?{query}" if query else "")
        targets = self.runtime.targets
        owner = await self.owners.owner(response_id)
        allowed = owner is None or (owner.target in targets and may_use(tenant, owner.target))
        verdict = access(owner, partition_of(tenant), allowed, self.runtime.auth.isolating)
        if verdict == "not_found":
            raise response_not_found(response_id)
        if owner is not None:  # the replica that stored it (a 502 saying so when it is gone), never another
            status, headers, content = await _request(targets[owner.target], method, path, owner.endpoint)
            served_by = owner.target
        else:
            status, headers, content, served_by = await self._probe(tenant, response_id, method, path)
        media_type = headers.pop("content-type", JSON)
        if status >= 400:
            content, media_type = openai_error_body(status, content, media_type), JSON
        headers[TARGET_HEADER] = served_by
        if tenant is not None and not tenant.shared:
            headers = tenant_headers(headers)
        return Response(content, status_code=status, headers=headers, media_type=media_type)

    async def _probe(self, tenant: Any, response_id: str, method: str, path: str) -> tuple[int, dict[str, str], bytes, str]:
        """Ask each replica of each native target the key may use, in order, for an id of unknown
        owner (a single trust domain only): the first answer that is not a 404 (its owner then
        recorded)."""
        failure: GatewayError | None = None
        for served_by, target in self.runtime.targets.items():
            if target.config.api != "responses" or not may_use(tenant, served_by):  # bridged targets store no responses
                continue
            for endpoint in list(target.pool.endpoints):
                try:
                    status, headers, content = await _request(target, method, path, endpoint.url)
                except GatewayError as exc:
                    log.info("response %s: target %s did not answer (%s)", response_id, served_by, exc.message)
                    failure = exc
                    continue
                if status != 404:
                    if status < 400:
                        await self.owners.record(response_id, Owner(partition_of(tenant), served_by, endpoint.url))
                    return status, headers, content, served_by
        if failure is not None:
            raise failure
        raise response_not_found(response_id)


async def _request(target: TargetClient, method: str, path: str, url: str | None) -> tuple[int, dict[str, str], bytes]:
    """One ``method path`` call to ``target``'s endpoint ``url`` (the replica that stores the
    response; None: unknown, any): (status, relayed headers, body)."""
    config = target.config
    pool = target.pool
    if url is not None:
        endpoint = pool.pinned(url)
        if endpoint is None:
            raise UpstreamUnreachable(f"the replica of target {config.name!r} that stored this response is no longer one of its endpoints")
    else:
        endpoint = pool.pick()
    if endpoint is None:
        raise UpstreamUnreachable(f"the target {config.name!r} is unreachable (no endpoint up)")
    headers = {"accept-encoding": "identity"}
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if key:
        headers["authorization"] = f"Bearer {key}"
    timeout = Timeout(connect=config.connect_timeout_s, read=config.timeout_s)
    pool.acquire(endpoint)
    try:
        response = await target.session.request(method, endpoint.url + path, headers=headers, timeout=timeout)
        try:
            if response.status in CREDENTIAL_REFUSED:
                raise UpstreamCredentialRefused.of(config.name, response.status)
            body = await response.read()
        finally:
            response.release()
        return response.status, relay_headers(response.headers), body
    except (WireError, ConnectionError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError) and not isinstance(exc, ConnectTimeout):  # connected, no answer in time
            raise UpstreamTimeout(f"the target {config.name!r} did not answer within {config.timeout_s:g}s") from None
        pool.mark_failure(endpoint, f"{type(exc).__name__}: {exc}")
        where = f"the replica of target {config.name!r} that stored this response" if url is not None else f"the target {config.name!r}"
        raise UpstreamUnreachable(f"{where} is unreachable ({type(exc).__name__})") from None
    finally:
        pool.release(endpoint)


__all__ = ["ResponseIndex", "Responses", "carry_index", "index_for"]
