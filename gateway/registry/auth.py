"""Register keys: ``server.register_keys`` plus env ``MPR_REGISTER_KEY`` (comma-separated). They are
neither client keys nor (unless an operator makes them the same) admin keys. With none configured,
registration answers 403; a missing or wrong key 401. ``GET /admin/workers`` takes either kind."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.admin.auth import KeyGate, admin_keys, configured_keys
from gateway.auth import ApiKeyAuth
from gateway.config.models import GatewayConfig
from gateway.errors import GatewayError

REGISTER_KEY_ENV = "MPR_REGISTER_KEY"


class RegistrationDisabled(GatewayError):
    """No register key is configured: workers cannot register (403)."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "registration_disabled"


def register_keys(config: GatewayConfig, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every accepted register key: ``server.register_keys`` and ``MPR_REGISTER_KEY``."""
    return configured_keys(config.server.register_keys, REGISTER_KEY_ENV, env)


class RegisterAuth(KeyGate):
    """The registration routes' gate."""

    @classmethod
    def of(cls, config: GatewayConfig, env: Mapping[str, str] | None = None) -> RegisterAuth:
        return cls(register_keys(config, env))

    def disabled(self) -> GatewayError:
        return RegistrationDisabled(
            f"No register key is configured: set server.register_keys or {REGISTER_KEY_ENV} to let workers register."
        )


def check_reader(config: GatewayConfig, authorization: str | None, env: Mapping[str, str] | None = None) -> None:
    """An admin key or a register key (``GET /admin/workers``); 403 when neither kind is configured."""
    either = ApiKeyAuth(admin_keys(config, env) | register_keys(config, env))
    if not either.enabled:
        raise RegistrationDisabled("No admin or register key is configured: the worker list is off.")
    either.authenticate(authorization)
