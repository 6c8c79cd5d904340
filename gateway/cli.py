"""``mpr-gateway``: serve, check-config, demo, eval, chat, status, usage, hash-key, canary."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from gateway.config import ConfigError, load_config
from gateway.serving.server import serve as _serve, setup_logging as _setup_logging
from gateway.serving.workers import available_cpus, worker_count


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.config.source import load_source

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app reloads on it: never die of one
    try:
        config, source = load_source(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _setup_logging(config.telemetry.log_level)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    server = config.server
    workers = worker_count(args.workers, server.workers, available_cpus())
    if workers > 1:
        from gateway.serving.supervisor import serve_workers

        return serve_workers(args.config, host, port, workers, server.drain_delay_s + server.shutdown_grace_s)
    logging.getLogger("gateway").info("serving %d target(s) on %s:%d (config %s)", len(config.targets), host, port, source.hash)
    from gateway.serving import heap
    from gateway.serving.worker import preload

    preload(args.config, config)  # read-only resources frozen before the app: a reload then frees a runtime cheaply
    heap.freeze_preloaded()
    app = create_app(config, source=source, config_path=args.config, reload_on_sighup=True)
    _serve(app, host, port, server.shutdown_grace_s, config.telemetry.log_level, server.drain_delay_s)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for path, message in exc.errors:
            print(f"{exc.source}: {path}: {message}", file=sys.stderr)
        return 1
    from gateway.config.checks import config_warnings

    adapters = [r for r in ("cleaner", "describer", "paraphraser") if getattr(config.adapters, r) is not None]
    print(f"{args.config}: OK ({len(config.targets)} target(s); adapters: {', '.join(adapters) or 'none'})")
    for path, message in config_warnings(config):
        print(f"{args.config}: warning: {path}: {message}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import os

    from gateway.app import create_app
    from gateway.config import Role
    from gateway.demo import DEMO_MODEL, admin_hint, demo_admin_key, demo_config, echo_routes
    from gateway.refinement.spelling import SpellingCleaner

    _setup_logging("INFO")
    log = logging.getLogger("gateway.demo")
    if args.target_api and not args.target:
        print("mpr-gateway demo: --target-api needs --target (the echo target speaks chat)", file=sys.stderr)
        return 2
    admin_key, made = demo_admin_key(os.environ)
    config = demo_config(args.port, args.target, args.model, host=args.host, target_api=args.target_api, admin_key=admin_key)
    log.info("built-in cleaner: symspellpy spelling correction (bundled English dictionary)")
    log.info("describer and paraphraser: off (they need a LoRA model served by vLLM)")
    extra = []
    if args.target:
        api = args.target_api or "responses"
        log.info("target: %s (model %s; /v1/responses %s)", args.target, args.model or DEMO_MODEL,
                 "forwarded natively" if api == "responses" else "bridged to chat completions")
    else:
        extra = echo_routes()
        log.info("target: built-in echo model %r that answers with what it received (chat, completions, embeddings; "
                 "responses bridged to chat)", DEMO_MODEL)
    app = create_app(config, builtin_stages={Role.CLEANER: SpellingCleaner()}, extra_routes=extra)
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown_host}:{args.port}"
    # the admin key on the terminal, never in the log stream
    print("\n".join(admin_hint(url, admin_key if made else None, made, args.model or DEMO_MODEL)), file=sys.stderr, flush=True)
    log.info(
        "try: python -c \"from openai import OpenAI; c=OpenAI(base_url='%s/v1', api_key='x'); "
        "print(c.chat.completions.create(model='%s', messages=[{'role':'user','content':'what is the captial of frnace?'}])"
        ".choices[0].message.content)\"",
        url,
        args.model or DEMO_MODEL,
    )
    _serve(app, args.host, args.port, 5, "info")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gateway.eval.command import run

    return run(args)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


DESCRIPTION = (
    "mpr-gateway: an OpenAI-compatible LLM gateway that refines prompts (cleaner, describer, paraphraser) "
    "before they reach the target model. Commands: serve, check-config, demo, eval, chat, status, usage, hash-key, canary."
)
EPILOG = "Each command has its own --help. Documentation: README.md and docs/ of the repository."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpr-gateway", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="path to routes.yaml")
    serve.add_argument("--host", help="address to listen on (default: server.host of the config)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port of the config)")
    serve.add_argument(
        "--workers", type=_positive_int, help="processes sharing the port (default: server.workers, else the usable CPUs; 1 = one process)"
    )
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check-config", help="validate a routes file; prints each error with its key path")
    check.add_argument("config", help="path to routes.yaml")
    check.set_defaults(func=cmd_check_config)
    demo = sub.add_parser("demo", help="offline demo: built-in cleaner and an echo target")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    demo.add_argument("--target", help="an OpenAI-compatible base URL (…/v1) to use instead of the echo target; key from OPENAI_API_KEY")
    demo.add_argument("--model", help="the target's model name (with --target)")
    demo.add_argument(
        "--target-api",
        choices=("chat", "responses"),
        help="what the --target speaks for /v1/responses: responses (forwarded natively, the default) "
        "or chat (a chat-completions-only server: the gateway bridges Responses to chat)",
    )
    demo.set_defaults(func=cmd_demo)
    from gateway.eval.command import add_arguments as eval_arguments

    evaluate = sub.add_parser("eval", help="measure refinement quality: skip gate, typos restored, words changed")
    eval_arguments(evaluate)
    evaluate.set_defaults(func=cmd_eval)
    from gateway.console.chat import add_arguments as chat_arguments, run as chat_run

    chat = sub.add_parser("chat", help="interactive chat through a gateway, showing each turn's refinement")
    chat_arguments(chat)
    chat.set_defaults(func=chat_run)
    from gateway.console.status import add_arguments as status_arguments, run as status_run

    status = sub.add_parser("status", help="the fleet as a table, from a running gateway's /admin/status (admin key)")
    status_arguments(status)
    status.set_defaults(func=status_run)
    from gateway.console.usage import add_commands as usage_commands

    usage_commands(sub)  # usage, hash-key
    from gateway.console.canary import add_commands as canary_commands

    canary_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
