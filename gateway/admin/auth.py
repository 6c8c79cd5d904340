"""Admin keys: ``server.admin_keys`` plus env ``MPR_ADMIN_KEY`` (comma-separated). Client API keys
are never admin keys. With no admin key configured, admin routes answer 403."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.auth import ApiKeyAuth
from gateway.config.models import GatewayConfig
from gateway.errors import GatewayError

ADMIN_KEY_ENV = "MPR_ADMIN_KEY"


class AdminDisabled(GatewayError):
    """No admin key is configured: the admin routes are off (403)."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "admin_disabled"


def admin_keys(config: GatewayConfig, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every accepted admin key: ``server.admin_keys`` and ``MPR_ADMIN_KEY``."""
    env = os.environ if env is None else env
    keys = {k.strip() for k in config.server.admin_keys if k.strip()}
    keys |= {k.strip() for k in env.get(ADMIN_KEY_ENV, "").split(",") if k.strip()}
    return frozenset(keys)


class AdminAuth:
    """``Authorization: Bearer <admin key>``: 403 when no admin key is configured, 401 when missing or wrong."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._auth = ApiKeyAuth(keys)

    def check(self, authorization: str | None) -> None:
        if not self._auth.enabled:
            raise AdminDisabled(f"No admin key is configured: set server.admin_keys or {ADMIN_KEY_ENV} to use the admin routes.")
        self._auth.authenticate(authorization)
