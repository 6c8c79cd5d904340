"""Which ``POST /v1/<path>`` the pass-through forwards, for whom (pure).

The pass-through is an allow-list. By default only :data:`INFERENCE_ROUTES` reach a target: calls
that compute an answer from the request alone, billed per call, leaving nothing behind on the
target's account — what a client key is sold. Everything else under ``/v1/`` is a 404 that never
reaches the target, because the gateway calls targets with the operator's credential:

- management routes of vLLM (``load_lora_adapter``, ``unload_lora_adapter``) change what a worker
  serves for every tenant;
- account routes (files, batches, fine-tuning, vector stores, assistants, threads, uploads,
  conversations, evals, containers, organization) read or create objects of the operator's account,
  which the target cannot tell apart by tenant.

An operator opens more paths per target (``targets[].passthrough``, globs); a named key reaches them
only when its ``keys[].routes`` names them too (bare ``server.api_keys`` and an open gateway — one
trust domain — reach every path a target opens). :func:`sensitive_globs` lets ``check-config`` warn
when an opened path is a management or account route. A path that equals a route the gateway serves
itself except for letter case (``/v1/Chat/Completions``) is refused: it would skip that route's
checks and refinement.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

INFERENCE_ROUTES: dict[str, str] = {
    "/v1/moderations": "classifies text or images; stateless",
    "/v1/rerank": "scores documents against a query (vLLM, Cohere/Jina shape); stateless",
    "/v1/score": "scores text pairs (vLLM); stateless",
    "/v1/classify": "classifies text (vLLM); stateless",
    "/v1/images/generations": "generates an image from a prompt; stateless (JSON body)",
    "/v1/audio/speech": "speaks a text; stateless (JSON body)",
    "/v1/audio/transcriptions": "transcribes audio; stateless (multipart: answered 415 by this gateway)",
    "/v1/audio/translations": "translates audio; stateless (multipart: answered 415 by this gateway)",
    "/v1/images/edits": "edits an image; stateless (multipart: answered 415 by this gateway)",
}
"""Forwarded by default (``/v1/embeddings`` has a route of its own): path → why it is safe."""

SENSITIVE_ROUTES: tuple[str, ...] = (
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
    "/v1/files",
    "/v1/batches",
    "/v1/fine_tuning",
    "/v1/vector_stores",
    "/v1/assistants",
    "/v1/threads",
    "/v1/uploads",
    "/v1/conversations",
    "/v1/evals",
    "/v1/containers",
    "/v1/organization",
    "/v1/projects",
    "/v1/admin_api_keys",
)
"""Management and account routes: never forwarded unless an operator opens them explicitly."""


def route_allowed(path: str, target_globs: Iterable[str], key_globs: Iterable[str] | None) -> bool:
    """Whether ``POST path`` goes to a target that opens ``target_globs``, for a caller whose key
    may use ``key_globs`` beyond the defaults (None: bare key or open gateway — every opened path)."""
    if path in INFERENCE_ROUTES:
        return True
    if not any(fnmatchcase(path, glob) for glob in target_globs):
        return False
    return key_globs is None or any(fnmatchcase(path, glob) for glob in key_globs)


def opened_anywhere(path: str, target_globs: Iterable[Iterable[str]], key_globs: Iterable[str] | None = None) -> bool:
    """Whether any target could forward ``path`` for a caller whose key may use ``key_globs``
    (None: every opened path) — else it is a 404 before the body is read, the same whether or not
    another key may call it."""
    if path in INFERENCE_ROUTES:
        return True
    if key_globs is not None and not any(fnmatchcase(path, glob) for glob in key_globs):
        return False
    return any(fnmatchcase(path, glob) for globs in target_globs for glob in globs)


def shadows_served(path: str, served: Iterable[str]) -> bool:
    """Whether ``path`` differs from a route the gateway serves (``served``: exact paths or
    prefixes ending in ``/``) only by letter case."""
    folded = path.casefold()
    for route in served:
        route_folded = route.casefold()
        if route.endswith("/"):
            if folded.startswith(route_folded) and not path.startswith(route):
                return True
        elif folded == route_folded and path != route:
            return True
    return False


def sensitive_globs(globs: Iterable[str]) -> list[tuple[str, str]]:
    """``(glob, sensitive route)`` for each opened glob that matches a management or account route
    (or a path under one)."""
    found: list[tuple[str, str]] = []
    for glob in globs:
        for route in SENSITIVE_ROUTES:
            if fnmatchcase(route, glob) or fnmatchcase(route + "/x", glob) or glob == route or glob.startswith(route + "/"):
                found.append((glob, route))
                break
    return found


def exposure_warnings(targets: Iterable[tuple[str, Iterable[str]]], keys: Iterable[tuple[str, Iterable[str]]]) -> list[tuple[str, str]]:
    """(key path, message) for each opened path glob (``targets``: (key path, globs) of
    ``targets[i].passthrough``; ``keys``: of ``server.keys[j].routes``) that reaches a management
    or account route: forwarded with the operator's credential, for every key it is given to."""
    warnings: list[tuple[str, str]] = []
    for where, globs in (*targets, *keys):
        for glob, route in sensitive_globs(globs):
            warnings.append(
                (
                    where,
                    f"{glob!r} opens {route}, a management or account route: it is called with the target's "
                    "credential (the operator's account) for every key allowed it (docs/security.md)",
                )
            )
    return warnings
