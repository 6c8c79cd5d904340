"""``mpr-gateway usage``: ``GET /admin/usage`` of a running gateway as a table by key and model
(``--json``: the answer as it is). Exit 0 with an answer, 1 unreachable or an error, 2 key refused."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from gateway.console.admin_api import AdminApiError, add_connection_arguments, fetch_admin

COLUMNS = ("KEY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "STAGES", "TOTAL")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--window", default="1h", help="how far back: 30m, 1h, 24h, 7d (default 1h)")


def fetch_usage(url: str, key: str | None, window: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """``GET {url}/admin/usage?window=…``; :class:`AdminApiError` when there is no answer."""
    return fetch_admin(url, "/admin/usage", key, "mpr.usage", params={"window": window}, timeout_s=timeout_s)


def render(body: dict[str, Any]) -> str:
    """The usage as aligned plain text (pure)."""
    rows = [
        (r["key"], r["model"], str(r["requests"]), str(r["prompt_tokens"]), str(r["completion_tokens"]), str(r["stage_tokens"]), str(r["total_tokens"]))
        for r in body.get("data", [])
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    scope = "all replicas (shared state)" if body.get("shared") else "this gateway process only (no shared state)"
    lines.append(f"window {body.get('window_s', 0) // 60} min; {scope}")
    if not rows:
        lines.append(EMPTY_HINT)
    return "\n".join(lines)


EMPTY_HINT = (
    "no usage in this window yet: each gateway process writes its usage about once a second "
    "(the one answering flushes its own first); try again in a second"
)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    key = args.key or os.environ.get("MPR_ADMIN_KEY")
    try:
        body = fetch_usage(args.url, key, args.window, args.timeout)
    except AdminApiError as exc:
        print(f"mpr-gateway usage: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(body, indent=2) if args.json else render(body), file=out)
    return 0


def hash_key_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """``mpr-gateway hash-key``: the ``sha256:…`` form of a key read from stdin (never an argument:
    shell history and process lists would keep it)."""
    from gateway.tenants.keyring import hash_key

    plain = sys.stdin.readline().strip()
    if not plain:
        print("mpr-gateway hash-key: give the key on stdin (echo -n KEY | mpr-gateway hash-key)", file=sys.stderr)
        return 1
    print(hash_key(plain), file=out)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``usage`` and ``hash-key`` on the CLI's subparsers."""
    usage = sub.add_parser("usage", help="tokens by key and model over a window, from a running gateway's /admin/usage (admin key)")
    add_arguments(usage)
    usage.set_defaults(func=run)
    hashed = sub.add_parser("hash-key", help="print the sha256: form of a client key read from stdin (server.keys[].key)")
    hashed.set_defaults(func=hash_key_command)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - the CLI calls run()
    parser = argparse.ArgumentParser(prog="mpr-gateway usage")
    add_arguments(parser)
    return run(parser.parse_args(argv))
