"""Operator keys, one kind per gate: admin keys (``server.admin_keys`` plus env ``MPR_ADMIN_KEY``,
comma-separated) here, register keys in :mod:`gateway.registry.auth`. Client API keys are never
operator keys. With no key of a kind configured, its routes answer 403; a missing or wrong key 401."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from gateway.auth import ApiKeyAuth
from gateway.config.models import GatewayConfig
from gateway.errors import GatewayError

ADMIN_KEY_ENV = "MPR_ADMIN_KEY"


class AdminDisabled(GatewayError):
    """No admin key is configured: the admin routes are off (403)."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "admin_disabled"


def configured_keys(listed: Iterable[str], env_var: str, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The keys of one kind: those ``listed`` in the config and those in env ``env_var``."""
    env = os.environ if env is None else env
    keys = {k.strip() for k in listed if k.strip()}
    keys |= {k.strip() for k in env.get(env_var, "").split(",") if k.strip()}
    return frozenset(keys)


def admin_keys(config: GatewayConfig, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every accepted admin key: ``server.admin_keys`` and ``MPR_ADMIN_KEY``."""
    return configured_keys(config.server.admin_keys, ADMIN_KEY_ENV, env)


class KeyGate:
    """``Authorization: Bearer <key>`` for one kind of operator key: :meth:`disabled` (403) when
    none is configured, 401 when missing or wrong."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._auth = ApiKeyAuth(keys)

    def disabled(self) -> GatewayError:
        raise NotImplementedError

    def check(self, authorization: str | None) -> None:
        if not self._auth.enabled:
            raise self.disabled()
        self._auth.authenticate(authorization)


class AdminAuth(KeyGate):
    """The admin routes' gate."""

    def disabled(self) -> GatewayError:
        return AdminDisabled(f"No admin key is configured: set server.admin_keys or {ADMIN_KEY_ENV} to use the admin routes.")
