"""Who sees what of the ops endpoints (``/metrics``, ``/ready``) under ``server.protect_ops_endpoints``.

An admin key sees everything. Without tenant keys (bare ``server.api_keys`` only: one trust
domain, nobody else to learn about) a client key does too, as before. With tenant keys, a client
key — bare or named — sees only what concerns it: ``/ready`` reports the readiness of the models it
may use (no endpoint URL, no adapter, no state, no config path), and ``/metrics`` (every tenant's
name and usage, every target) is a 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.tenants.keyring import Tenant
from gateway.tenants.policy import may_use

if TYPE_CHECKING:
    from gateway.runtime import Runtime

FULL = "full"


class OpsForbidden(GatewayError):
    """A client key asked for an operator's view (403)."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "insufficient_permissions"


def ops_caller(runtime: Runtime, authorization: str | None) -> Tenant | None | str:
    """:data:`FULL` for an admin key (or a client key while no tenant keys exist, or auth off),
    else the client key's tenant, whose view is scoped; a missing or wrong key is a 401."""
    try:
        runtime.admin.check(authorization)
        return FULL
    except GatewayError:
        pass
    tenant = runtime.auth.authenticate(authorization)
    if tenant is None or not runtime.auth.isolating:
        return FULL
    return tenant


def scoped_readiness(runtime: Runtime, tenant: Tenant) -> tuple[bool, dict[str, object]]:
    """(ready, body) of ``/ready`` for a client key: its own models' readiness only."""
    targets = {name: {"up": pool.any_up} for name, pool in runtime.target_pools.items() if may_use(tenant, name)}
    ready = any(t["up"] for t in targets.values()) and not runtime.draining
    return ready, {"status": "ready" if ready else "unready", "draining": runtime.draining, "targets": targets}


def metrics_denied() -> OpsForbidden:
    return OpsForbidden("The metrics cover every tenant: scrape /metrics with an admin key (server.admin_keys).")
