"""``mpr-gateway eval``: its arguments and what it runs. Exit 0; 2 for bad arguments or files;
1 when the backend fails (unreachable gateway, HTTP error)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from gateway.config.models import Role

DEFAULT_NOISE = "0,0.05,0.1,0.2"


def parse_noise(value: str) -> list[float]:
    """``0,0.05,0.1`` → sorted distinct rates in [0, 1], 0 always included."""
    try:
        rates = {float(v) for v in value.split(",") if v.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None
    if any(not 0 <= r <= 1 for r in rates):
        raise argparse.ArgumentTypeError(f"noise rates must be between 0 and 1, got {value!r}")
    return sorted(rates | {0.0})


def parse_stage_list(value: str) -> tuple[Role, ...]:
    """``cleaner,paraphraser`` → roles (at least one)."""
    roles: list[Role] = []
    for name in value.split(","):
        if not name.strip():
            continue
        try:
            role = Role(name.strip().lower())
        except ValueError:
            raise argparse.ArgumentTypeError(f"unknown stage {name.strip()!r} (expected cleaner, describer, paraphraser)") from None
        if role not in roles:
            roles.append(role)
    if not roles:
        raise argparse.ArgumentTypeError("at least one stage is needed")
    return tuple(roles)


def non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value!r}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="+", metavar="PROMPTS", help=".jsonl / .txt files or directories of them")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running gateway (POST {URL}/v1/refine); default: the built-in cleaner in-process")
    where.add_argument("--config", help="routes.yaml: run its stages in-process (real vLLM stages)")
    parser.add_argument("--noise", type=parse_noise, default=parse_noise(DEFAULT_NOISE), help=f"typo rates (default {DEFAULT_NOISE})")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default 1)")
    parser.add_argument("--stages", type=parse_stage_list, default=(Role.CLEANER,), help="stages to run (default cleaner)")
    parser.add_argument("--api-key", help="bearer key for --url (default: $MPR_API_KEY)")
    parser.add_argument("--limit", type=non_negative, help="evaluate only the first N prompts")
    parser.add_argument("--concurrency", type=non_negative, default=8, help="refinements in flight for --url/--config (default 8)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--worst", type=non_negative, default=5, help="examples shown per error kind (default 5)")


def run(args: argparse.Namespace) -> int:
    """The subcommand: load prompts, refine, print the report."""
    from gateway.eval.backends import BackendError, SetupError
    from gateway.eval.prompts import PromptFileError, load_prompts

    try:
        prompts = load_prompts(args.prompts)
    except PromptFileError as exc:
        print(f"mpr-gateway eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        prompts = prompts[: args.limit]
    try:
        report = asyncio.run(evaluate(args, prompts))
    except SetupError as exc:
        print(f"mpr-gateway eval: {exc}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"mpr-gateway eval: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        from gateway.eval.render import render

        sys.stdout.write(render(report))
    return 0


async def evaluate(args: argparse.Namespace, prompts: list[Any]) -> dict[str, Any]:
    """Run the evaluation these arguments describe and return its figures."""
    from gateway.eval import runner
    from gateway.eval.backends import open_backend
    from gateway.eval.report import build_report
    from gateway.refinement.dictionary import english_words

    jobs = runner.plan(prompts, args.noise, args.seed, english_words())
    api_key = args.api_key or os.environ.get("MPR_API_KEY") or None
    concurrency = max(1, args.concurrency)
    async with open_backend(args.stages, url=args.url, config_path=args.config, api_key=api_key, concurrency=concurrency) as backend:
        started = time.perf_counter()
        samples = await runner.run(backend, jobs, progress=_progress() if sys.stderr.isatty() else None)
        elapsed = time.perf_counter() - started
    return build_report(
        samples,
        prompts,
        backend=backend.name,
        stages=[r.value for r in args.stages],
        seed=args.seed,
        rates=args.noise,
        elapsed_s=elapsed,
        worst=args.worst,
    )


def _progress() -> Any:
    last = [-1]

    def show(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth != last[0]:
            last[0] = tenth
            print(f"\reval: {done}/{total} texts refined", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return show
