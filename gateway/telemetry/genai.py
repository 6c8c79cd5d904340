"""Attribute names: OpenTelemetry GenAI semantic conventions plus the gateway's ``mpr.*``."""

from __future__ import annotations

# GenAI semantic conventions (gen_ai.*) and general ones
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"  # opt-in (telemetry.capture_prompts)
OUTPUT_MESSAGES = "gen_ai.output.messages"  # opt-in
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_STATUS = "http.response.status_code"
HTTP_ROUTE = "http.route"

# gateway attributes
STAGE = "mpr.stage"
STAGE_ACCEPTED = "mpr.stage.accepted"
STAGE_REASON = "mpr.stage.reason"
STAGE_DRIFT = "mpr.stage.drift"
STAGE_LENGTH_RATIO = "mpr.stage.length_ratio"
STAGE_ERROR = "mpr.stage.error"
STAGE_OUTCOME = "mpr.stage.outcome"
REFINEMENT = "mpr.refinement"
MODE = "mpr.mode"
SKIPPED = "mpr.skipped"
SKIP_REASON = "mpr.skip_reason"
FALLBACK_REASON = "mpr.fallback_reason"
STAGES = "mpr.stages"
APPLIED = "mpr.applied"
CHANGED = "mpr.changed"
REFINE_MS = "mpr.refine_ms"
CACHE = "mpr.cache"  # hit, miss, off
TARGET = "mpr.target"
ATTEMPT = "mpr.attempt"  # 1-based try number of a target call (retries, fallbacks)
PROMPT_ORIGINAL = "mpr.prompt.original"  # opt-in
PROMPT_REFINED = "mpr.prompt.refined"  # opt-in
DESCRIPTION = "mpr.description"  # opt-in

CHAT = "chat"
PROVIDER_VLLM = "vllm"
