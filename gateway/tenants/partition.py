"""Which partition of the shared structures a caller's data lives in (pure).

The refinement cache, the conversation store and the records of who created a response are split
by tenant, so that nothing one tenant sent can be seen, hinted at (a cache hit) or fetched by
another. A named key (``server.keys``) is a partition of its own
(:func:`~gateway.tenants.keyring.named_partition`); the bare ``server.api_keys`` and an open
gateway (no keys) share one, :data:`SHARED` — they are one trust domain by definition.
"""

from __future__ import annotations

from gateway.tenants.keyring import SHARED_PARTITION, Tenant

SHARED = SHARED_PARTITION


def partition_of(tenant: Tenant | None) -> str:
    """``tenant``'s partition (:data:`SHARED` for no tenant or a bare key)."""
    return SHARED if tenant is None else tenant.partition
