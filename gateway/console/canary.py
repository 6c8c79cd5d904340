"""``mpr-gateway canary status|promote|rollback [ROLE]``: the stages' canaries of a running gateway
(``/admin/canary``, admin key; :mod:`gateway.refinement.canary`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from gateway.console.admin_api import AdminApiError, add_connection_arguments, fetch_admin


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render(canaries: list[dict[str, Any]]) -> str:
    """One block per canary: state, share, each arm's figures and the test."""
    if not canaries:
        return "no canary configured (adapters.<role>.canary)"
    lines = []
    for c in canaries:
        lines.append(f"{c['role']}: {c['candidate']} on {_pct(c['share'])} of the calls (stable {c['stable']}) — {c['state'].replace('_', ' ')}"
                     + (f" ({c['reason']})" if c.get("reason") else ""))
        lines.append(f"  {'arm':10s} {'verdicts':>8s} {'accepted':>9s} {'rejected':>9s} {'failed':>7s} {'ms':>8s} {'drift':>7s}")
        for arm in ("stable", "candidate"):
            a = c["arms"][arm]
            ms = "-" if a["mean_latency_ms"] is None else f"{a['mean_latency_ms']:.1f}"
            drift = "-" if a["mean_drift"] is None else f"{a['mean_drift']:.3f}"
            lines.append(f"  {arm:10s} {a['verdicts']:8d} {_pct(a['acceptance_rate']):>9s} {a['rejected']:9d} {a['failed']:7d} {ms:>8s} {drift:>7s}")
        test = c["test"]
        judged = "not yet judged" if test["p_value"] is None else f"z={test['z']}, p={test['p_value']:.3g} (alpha {c['alpha']:g})"
        lines.append(f"  candidate worse? {judged}; judged after {c['min_requests']} verdicts per arm")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    key = args.key or os.environ.get("MPR_ADMIN_KEY")
    try:
        if args.action == "status":
            body = fetch_admin(args.url, "/admin/canary", key, "mpr.canaries", timeout_s=args.timeout)
            canaries = [c for c in body["data"] if args.role in (None, c["role"])]
        else:
            if args.role is None:
                raise AdminApiError(f"canary {args.action} needs the stage: mpr-gateway canary {args.action} ROLE", 2)
            canaries = [fetch_admin(args.url, f"/admin/canary/{args.role}/{args.action}", key, None, timeout_s=args.timeout, method="POST")]
    except AdminApiError as exc:
        print(f"mpr-gateway canary: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(canaries, indent=1) if args.json else render(canaries), file=out)
    return 0


def add_commands(sub: Any) -> None:
    """``canary`` on the ``mpr-gateway`` parser."""
    canary = sub.add_parser(
        "canary", help="a stage's candidate adapter version on live traffic: status, promote or rollback (admin key)"
    )
    canary.add_argument("action", choices=["status", "promote", "rollback"], help="show, or give the verdict by hand")
    canary.add_argument("role", nargs="?", choices=["cleaner", "describer", "paraphraser"], help="the stage (status: all)")
    add_connection_arguments(canary)
    canary.set_defaults(func=run)
