"""Stage backends: one call to one LoRA specialist, turned into a :class:`StageResult`.

A stage never raises for upstream trouble: errors come back as ``StageResult.error``
(``timeout``, ``connect_error``, ``http_<status>``, ``malformed``), so the merge can drop it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

import msgspec

from gateway.config.models import AdapterConfig, Role
from gateway.refinement.canary import Canary
from gateway.refinement.prompts import PromptTemplate
from gateway.refinement.results import StageResult
from gateway.telemetry import annotate_endpoint, annotate_response
from gateway.upstream.pool import EndpointPool
from gateway.upstream.wire import ConnectError, Disconnected, Session, Timeout, WireError
from gateway.tenants.meter import note_stage


class StageBackend(Protocol):
    """Anything that can run one refinement stage on a text."""

    role: Role

    async def run(self, text: str, headers: dict[str, str] | None = None) -> StageResult: ...


def parse_stage_reply(body: bytes, output: str, output_key: str | None) -> str:
    """The stage's text from an OpenAI chat completion body; ``ValueError`` when malformed."""
    try:
        data = msgspec.json.decode(body)
        content = data["choices"][0]["message"]["content"]
    except (msgspec.DecodeError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not an OpenAI chat completion: {type(exc).__name__}") from None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise ValueError("message.content is not a string")
    if output == "json":
        try:
            obj = msgspec.json.decode(content.strip().encode())
        except msgspec.DecodeError:
            raise ValueError("the reply is not the JSON object the adapter config asks for") from None
        value = obj.get(output_key) if isinstance(obj, dict) and output_key else None
        if not isinstance(value, str):
            raise ValueError(f"the JSON reply has no string {output_key!r}")
        return value
    return content


def stage_version(config: AdapterConfig, template: PromptTemplate) -> str:
    """The adapter's model plus a hash of its prompt template, parameters and output format."""
    shape = msgspec.json.encode([template.system, template.user, config.params, config.output, config.output_key], order="sorted")
    return f"vllm:{config.model}:{hashlib.blake2b(shape, digest_size=8).hexdigest()}"


class VllmStage:
    """A LoRA adapter served by vLLM's OpenAI API (``model`` = the LoRA name)."""

    def __init__(
        self,
        role: Role,
        config: AdapterConfig,
        template: PromptTemplate,
        pool: EndpointPool,
        session: Session,
    ) -> None:
        self.role = role
        self.config = config
        self.template = template
        self.pool = pool
        self.session = session
        self._timeout = Timeout(connect=config.connect_timeout_s, total=config.timeout_s)
        self._params: dict[str, Any] = {k: v for k, v in config.params.items() if k not in ("model", "messages", "stream")}
        self._version = stage_version(config, template)
        self.canary: Canary | None = None  # a candidate version on a share of the calls (set by the runtime)

    @property
    def fingerprint(self) -> str:
        """This stage's version in the refinement cache's key (with its canary's state)."""
        canary = self.canary
        return self._version if canary is None else f"{self._version}|{canary.fingerprint}"

    def request_body(self, text: str, model: str | None = None) -> bytes:
        """The chat request; ``model``: the endpoint's own LoRA name (a registered worker), else the adapter's."""
        return msgspec.json.encode(
            {"model": model or self.config.model, "messages": self.template.render(text), **self._params, "stream": False}
        )

    async def run(self, text: str, headers: dict[str, str] | None = None) -> StageResult:
        started = time.perf_counter()
        endpoint = self.pool.pick()
        if endpoint is None:
            return StageResult(self.role, error="no_endpoint")
        annotate_endpoint(endpoint.url)  # server.address/port on the stage span (tracing on)
        canary = self.canary
        arm = canary.arm(text) if canary is not None else None
        model = canary.model if arm == "candidate" and canary is not None else endpoint.model
        self.pool.acquire(endpoint)
        error: str | None = None
        output: str | None = None
        try:
            response = await self.session.post(
                endpoint.url + "/chat/completions",
                data=self.request_body(text, model),
                headers={"content-type": "application/json", **(headers or {})},
                timeout=self._timeout,
            )
            try:
                body = await response.read()
            finally:
                response.release()
            annotate_response(response.status, body)  # usage, finish reasons (tracing on)
            note_stage(self.role.value, body)  # the tenant's stage tokens (gateway.tenants.meter)
            if response.status != 200:
                error = f"http_{response.status}"
            else:
                output = parse_stage_reply(body, self.config.output, self.config.output_key)
        except TimeoutError:
            error = "timeout"
        except (ConnectError, Disconnected, ConnectionError):
            error = "connect_error"
            self.pool.mark_failure(endpoint, "connection failed")
        except WireError:
            error = "http_error"
        except ValueError:
            error = "malformed"
        finally:
            self.pool.release(endpoint, time.perf_counter() - started)
        if error is None or error.startswith("http_4"):  # malformed output proves nothing about health
            self.pool.mark_success(endpoint)
        elif error.startswith("http_5"):
            self.pool.mark_failure(endpoint, error)
        return StageResult(self.role, output=output, error=error, latency_ms=(time.perf_counter() - started) * 1000, arm=arm)
