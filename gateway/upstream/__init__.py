"""Upstream endpoints: balancing pools, shared HTTP sessions, health probes."""
