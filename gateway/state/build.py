"""The :class:`~gateway.state.SharedState` a config asks for."""

from __future__ import annotations

from gateway.config.models import StateConfig
from gateway.state import SharedState
from gateway.state.local import LocalState
from gateway.state.records import records_from_env
from gateway.state.registrations import registrations_from_env


def build_state(config: StateConfig) -> SharedState:
    """In-process state without ``redis_url``; else Redis behind the fail-open wrapper."""
    local = LocalState(config.local_cache_entries, registrations=registrations_from_env(), records=records_from_env())
    if config.redis_url is None:
        return local
    # Only with Redis: the client (and the OpenTelemetry SDK it imports) is ≈7 MB of every process.
    from gateway.state.failopen import FailOpenState
    from gateway.state.redis_state import RedisState

    redis = RedisState(
        config.redis_url,
        prefix=config.key_prefix,
        connect_timeout_s=config.connect_timeout_s,
        op_timeout_s=config.op_timeout_s,
        max_connections=config.max_connections,
        listen_backoff_s=config.retry_backoff_s,
        listen_backoff_max_s=config.retry_backoff_max_s,
    )
    return FailOpenState(redis, local, backoff_s=config.retry_backoff_s, backoff_max_s=config.retry_backoff_max_s)
