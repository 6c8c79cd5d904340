"""Validated configuration value classes for ``config/routes.yaml``.

Every class is frozen: the running gateway never mutates its config. Durations are seconds
(``*_s``), sizes are bytes, drift bounds follow POaaS (drift <= 0.18, length ratio <= 2.4).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from gateway.config.keys import KeyConfig, RouteGlob


class Role(StrEnum):
    """The three refinement specialists."""

    CLEANER = "cleaner"
    DESCRIBER = "describer"
    PARAPHRASER = "paraphraser"


ALL_ROLES: tuple[Role, ...] = (Role.CLEANER, Role.DESCRIBER, Role.PARAPHRASER)

Tier = Literal["gpu", "cpu"]
"""What serves an endpoint: a GPU or only CPUs (registered workers announce it; ``adapters.<role>.tiers``)."""

RefinementMode = Literal["apply", "shadow"]
ConversationHistory = Literal["refined", "raw"]
"""apply: forward the refined prompt; shadow: refine beside the call, forward the original."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_base_url(url: HttpUrl) -> HttpUrl:
    """An OpenAI base URL must end in ``/v1``."""
    if not str(url).rstrip("/").endswith("/v1"):
        raise ValueError(f"endpoint {str(url)!r} must be an OpenAI-compatible base URL ending in /v1")
    if url.username is not None or url.password is not None:  # the upstream client never sends them
        raise ValueError(f"endpoint of host {url.host!r} has credentials in its URL: give the key with api_key_env instead")
    return url


EndpointUrl = Annotated[HttpUrl, AfterValidator(_check_base_url), Field(description="base URL ending in /v1")]


class _Upstream(_Frozen):
    endpoints: list[EndpointUrl] = Field(min_length=1)
    connect_timeout_s: float = Field(default=2.0, gt=0)
    cooldown_s: float = Field(default=5.0, ge=0, description="how long a failed endpoint is skipped")
    max_connections: int = Field(default=1024, ge=1, description="keep-alive pool size per upstream")

    @property
    def base_urls(self) -> list[str]:
        return [str(u).rstrip("/") for u in self.endpoints]


class RetryConfig(_Frozen):
    """Retries and fail-over of target calls (top-level ``retry``; ``targets[].retry`` overrides
    the keys it sets). Retries only happen before the client got a byte."""

    attempts: int = Field(default=1, ge=1, le=10, description="tries per target (1: no retry beyond the connection retry)")
    on_status: list[int] = Field(
        default_factory=lambda: [429, 500, 502, 503, 504], description="target statuses retried / failed over"
    )
    on_errors: list[Literal["connect", "timeout"]] = Field(
        default_factory=lambda: ["connect", "timeout"],
        description="connect: unreachable, refused, reset before the answer; timeout: no answer within timeout_s",
    )
    backoff_s: float = Field(default=0.2, ge=0, description="first retry's wait; doubles per retry, with jitter")
    backoff_max_s: float = Field(default=5.0, ge=0, description="cap of one backoff wait")
    deadline_s: float = Field(default=60.0, gt=0, description="no new attempt or wait after this long (all targets)")

    @model_validator(mode="after")
    def _statuses(self) -> RetryConfig:
        bad = [s for s in self.on_status if s != 429 and not 500 <= s <= 599]
        if bad:
            raise ValueError(f"on_status {bad}: only 429 and 5xx may be retried (other 4xx are the client's fault)")
        return self


class TargetConfig(_Upstream):
    """A model clients may ask for, served by one or more OpenAI-compatible endpoints."""

    name: str = Field(min_length=1, description="shown on /v1/models, matched against request.model")
    upstream_model: str | None = Field(default=None, description="model sent upstream; default: name")
    api_key_env: str | None = Field(default=None, description="env var holding the upstream API key")
    refine: bool = True
    timeout_s: float = Field(default=600.0, gt=0, description="read timeout for the target call")
    refinement_mode: RefinementMode | None = Field(default=None, description="apply | shadow; null: refinement.mode")
    conversation_history: ConversationHistory | None = Field(
        default=None, description="refined | raw: earlier user turns; null: refinement.conversations.history"
    )
    api: Literal["responses", "chat"] = Field(
        default="responses",
        description="how /v1/responses reaches it: responses = forwarded natively (vLLM, OpenAI); chat = bridged to chat completions",
    )
    fallbacks: list[str] = Field(
        default_factory=list, description="other targets tried in order when this one fails (their own fallbacks are not followed)"
    )
    retry: RetryConfig | None = Field(default=None, description="overrides of the top-level retry block for this target")
    balance: Literal["affinity", "least_outstanding"] = Field(
        default="affinity",
        description="how requests spread over several endpoints: affinity = a conversation (or prompt_cache_key) keeps "
        "its replica, with bounded loads (docs/scaling.md#cache-aware-routing); least_outstanding = the least busy",
    )
    affinity_epsilon: float = Field(
        default=0.25, gt=0, le=10, description="affinity: no replica takes a request above (1 + epsilon) x the mean in flight"
    )
    passthrough: list[RouteGlob] = Field(
        default_factory=list,
        description="POST /v1/… paths (globs) forwarded to this target beyond the inference defaults; "
        "a tenant key also needs them in its `routes` (docs/security.md)",
    )

    @property
    def model_for_upstream(self) -> str:
        return self.upstream_model or self.name


class CanaryConfig(_Frozen):
    """A candidate version of an adapter tried on a share of the stage's calls
    (``gateway/refinement/canary.py``, docs/adapters.md#canary)."""

    model: str = Field(min_length=1, description="the candidate's LoRA name (e.g. cleaner@2), served by the adapter's endpoints")
    share: float = Field(gt=0, le=1, description="share of the stage's calls (by prompt, sticky) sent to the candidate")
    min_requests: int = Field(default=200, ge=10, description="verdicts each arm needs before the candidate is judged")
    alpha: float = Field(default=0.001, gt=0, lt=0.5, description="one-sided p-value under which a worse candidate is rolled back")
    auto_rollback: bool = Field(default=True, description="false: judge and report only; an operator rolls back")


class AdapterConfig(_Upstream):
    """One LoRA specialist served by vLLM: ``model`` is the LoRA name vLLM lists."""

    model: str = Field(min_length=1)
    prompt: Path = Field(description="prompt template (relative paths resolve against the config file)")
    params: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0, "max_tokens": 256})
    timeout_s: float = Field(default=2.5, gt=0)
    output: Literal["text", "json"] = Field(
        default="text", description="text: the reply is the output; json: read `output_key` from a JSON object"
    )
    output_key: str | None = None
    enabled: bool = True
    endpoints: list[EndpointUrl] = Field(
        default_factory=list, description="configured base URLs; may be empty when workers register themselves"
    )
    tiers: dict[str, Tier] = Field(default_factory=dict, description="tier (gpu | cpu) of configured endpoints, by URL")
    prefer: Literal["gpu", "cpu", "none"] = Field(
        default="none", description="the tier that takes traffic first; the other only when it is down or saturated"
    )
    max_inflight: int = Field(default=4, ge=1, description="requests in flight at which an endpoint counts as saturated")
    canary: CanaryConfig | None = Field(default=None, description="a candidate version tried on a share of the calls")

    @model_validator(mode="after")
    def _known_tier_urls(self) -> AdapterConfig:
        unknown = sorted(set(url.rstrip("/") for url in self.tiers) - set(self.base_urls))
        if unknown:
            raise ValueError(f"tiers: {', '.join(unknown)} is not one of this adapter's endpoints")
        return self

    def tier_of(self, url: str) -> Tier | None:
        """The configured tier of endpoint ``url`` (None: not declared)."""
        return {key.rstrip("/"): tier for key, tier in self.tiers.items()}.get(url.rstrip("/"))


class AdaptersConfig(_Frozen):
    cleaner: AdapterConfig | None = None
    describer: AdapterConfig | None = None
    paraphraser: AdapterConfig | None = None

    def get(self, role: Role) -> AdapterConfig | None:
        adapter: AdapterConfig | None = getattr(self, role.value)
        return adapter if adapter is not None and adapter.enabled else None


class SkipGateConfig(_Frozen):
    enabled: bool = True
    max_unknown_words: int = Field(default=0, ge=0, description="unknown words tolerated in a clean prompt")
    max_prompt_chars: int = Field(
        default=8000, ge=1, description="longer prompts are forwarded unrefined (x-mpr-refinement says why)"
    )
    context_check: bool = Field(
        default=True, description="refine known words the trigram language model says are mistyped (bigger tan the)"
    )


class DriftConfig(_Frozen):
    max_drift: float = Field(default=0.18, ge=0, le=1)
    max_length_ratio: float = Field(default=2.4, ge=1)


class DescriberConfig(_Frozen):
    max_facts: int = Field(default=3, ge=1)
    max_tokens: int = Field(default=120, ge=1)
    placement: Literal["system", "append"] = "system"
    min_known_word_ratio: float = Field(
        default=0.6, ge=0, le=1, description="share of dictionary words a description needs (rejects gibberish)"
    )


class RefinementCacheConfig(_Frozen):
    """The refinement cache: merged outcomes by a hash of the prompt and everything that shapes them.
    They live in ``state`` (in-process: ``state.local_cache_entries`` bounds them; Redis: the TTL)."""

    enabled: bool = True
    ttl_s: float = Field(default=3600.0, gt=0, description="how long an outcome is reused")


class ConversationsConfig(_Frozen):
    """How earlier user turns of a conversation reach the target (only a new last user turn is
    ever refined): ``refined`` = each as the target saw it when it was new (remembered in
    ``state`` for ``ttl_s``); ``raw`` = each as the client sent it."""

    history: ConversationHistory = "refined"
    ttl_s: float = Field(default=86400.0, gt=0, description="how long a refined turn is remembered")


class RefinementConfig(_Frozen):
    deadline_s: float = Field(default=3.0, gt=0, description="overall refinement budget")
    stages: list[Role] = Field(default_factory=lambda: list(ALL_ROLES), description="stages on by default")
    skip_gate: SkipGateConfig = SkipGateConfig()
    drift: DriftConfig = DriftConfig()
    describer: DescriberConfig = DescriberConfig()
    builtin_cleaner: Literal["off", "fallback", "always"] = Field(
        default="off",
        description="the CPU spelling cleaner: fallback = answers when the cleaner adapter is missing or fails; "
        "always = replaces the adapter",
    )
    mode: RefinementMode = Field(
        default="apply", description="apply: forward the refined prompt; shadow: forward the original, record the refinement"
    )
    cache: RefinementCacheConfig = RefinementCacheConfig()
    conversations: ConversationsConfig = ConversationsConfig()


class RateLimitConfig(_Frozen):
    requests_per_s: float = Field(default=0.0, ge=0, description="per API key; 0 turns it off")
    burst: int = Field(default=0, ge=0)


class ServerConfig(_Frozen):
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list, description="literal keys (use ${ENV} interpolation)")
    api_keys_env: str | None = Field(
        default="MPR_API_KEYS", description="env var with comma-separated keys; null turns it off"
    )
    api_keys_file: Path | None = Field(default=None, description="file with one key per line")
    keys: list[KeyConfig] = Field(default_factory=list, description="tenant keys: models, limits, budget, refinement policy (docs/tenants.md)")
    keys_file: Path | None = Field(default=None, description="YAML file with `keys: [...]` as server.keys (re-read on reload)")
    protect_ops_endpoints: bool = Field(
        default=False,
        description="require a key for /metrics and /ready: an admin key sees all; with tenant keys configured, "
        "a client key gets only its own models' readiness and no /metrics (docs/security.md)",
    )
    admin_keys: list[str] = Field(
        default_factory=list, description="keys for /admin/* (with env MPR_ADMIN_KEY); none = the admin routes answer 403"
    )
    register_keys: list[str] = Field(
        default_factory=list, description="keys workers register with (with env MPR_REGISTER_KEY); none = registration answers 403"
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_messages: int = Field(default=2048, ge=1)
    rate_limit: RateLimitConfig = RateLimitConfig()
    probe_interval_s: float = Field(default=5.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    drain_delay_s: float = Field(
        default=0.0, ge=0, description="after SIGTERM, keep listening this long with /ready and new requests at 503"
    )
    workers: int | None = Field(
        default=None, ge=1, description="server processes sharing the port; null = the CPUs this process may use"
    )


class TelemetryConfig(_Frozen):
    """Tracing/logging switches; standard ``OTEL_*`` variables also apply."""

    traces_exporter: Literal["none", "otlp_http", "otlp_grpc", "console"] = "none"
    otlp_endpoint: str | None = None
    service_name: str = "mpr-gateway"
    capture_prompts: bool = Field(default=False, description="put prompt/answer text in spans and logs")
    access_log: bool = Field(default=True, description="one JSON access-log line per request (no prompt text)")
    log_level: str = "INFO"
    audit_sample_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of refinements written to the audit log (needs capture_prompts)"
    )
    audit_path: Path | None = Field(default=None, description="audit log file; null: the JSON log stream (gateway.audit)")
    usage_log: Path | None = Field(default=None, description="JSON-lines usage log, one line per request (docs/tenants.md); null: none")

    @model_validator(mode="after")
    def _audit_needs_capture(self) -> TelemetryConfig:
        if self.audit_sample_rate > 0 and not self.capture_prompts:
            raise ValueError(
                "audit_sample_rate > 0 writes prompt text to the audit log, and prompts are user data: "
                "set telemetry.capture_prompts: true to allow it, or audit_sample_rate: 0"
            )
        return self


class StateConfig(_Frozen):
    """Where state shared by processes and replicas lives (rate limits, endpoint cool-downs, the
    refinement cache). No ``redis_url``: all in this process."""

    redis_url: str | None = Field(default=None, description="redis:// or rediss:// URL of Redis or Valkey; null: in-process state")
    key_prefix: str = Field(default="mpr:", description="prefix of every key and channel the gateway uses")
    connect_timeout_s: float = Field(default=0.25, gt=0, description="TCP connect timeout to Redis")
    op_timeout_s: float = Field(default=0.2, gt=0, description="timeout of every Redis call; past it the call fails open")
    max_connections: int = Field(default=32, ge=1, description="Redis sockets per process; a burst past it waits for a free one (within op_timeout_s)")
    retry_backoff_s: float = Field(default=0.2, gt=0, description="first wait before reconnecting to an unreachable Redis; doubles")
    retry_backoff_max_s: float = Field(default=2.0, gt=0, description="cap of one reconnect wait")
    local_cache_entries: int = Field(default=10_000, ge=0, description="in-process cache size (no redis_url)")

    @model_validator(mode="after")
    def _redis_scheme(self) -> StateConfig:
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url {self.redis_url!r} must start with redis://, rediss:// or unix://")
        return self


class GatewayConfig(_Frozen):
    """The whole ``routes.yaml``."""

    server: ServerConfig = ServerConfig()
    targets: list[TargetConfig] = Field(min_length=1)
    adapters: AdaptersConfig = AdaptersConfig()
    refinement: RefinementConfig = RefinementConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    retry: RetryConfig = RetryConfig()
    state: StateConfig = StateConfig()

    @model_validator(mode="after")
    def _unique_target_names(self) -> GatewayConfig:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate target names: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _known_fallbacks(self) -> GatewayConfig:
        names = {t.name for t in self.targets}
        for i, target in enumerate(self.targets):
            for j, fallback in enumerate(target.fallbacks):
                where = f"targets[{i}].fallbacks[{j}]"
                if fallback == target.name:
                    raise ValueError(f"{where}: target {target.name!r} cannot be its own fallback")
                if fallback not in names:
                    raise ValueError(f"{where}: no target named {fallback!r}")
                if fallback in target.fallbacks[:j]:
                    raise ValueError(f"{where}: {fallback!r} is listed twice")
        return self

    def retry_for(self, target: TargetConfig) -> RetryConfig:
        """``target``'s retry policy: the top-level ``retry`` with the keys ``targets[].retry`` sets."""
        if target.retry is None:
            return self.retry
        override = target.retry
        return self.retry.model_copy(update={key: getattr(override, key) for key in override.model_fields_set})

    def target(self, name: str) -> TargetConfig | None:
        for target in self.targets:
            if target.name == name:
                return target
        return None
