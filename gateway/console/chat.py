"""``mpr-gateway chat``: an interactive chat through the gateway that shows what refinement did.

Each turn sends the whole conversation, streams the answer as it arrives, and prints the original
and refined prompt, each stage's verdict, the description added and the latencies. Commands:
``/status``, ``/stages``, ``/reset``, ``/help``, ``/quit`` (or Ctrl-D).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from gateway.console.admin_api import DEFAULT_URL
from gateway.console.chat_client import Answer, ChatClient, ChatError
from gateway.console.fleet import ready_lines, stage_lines, status_lines
from gateway.console.turn import Timings, paint, summary_lines, timing_line

HISTORY_FILE = Path("~/.mpr_chat_history")

HELP = """commands:
  /status   fleet summary (/admin/status with an admin key, else /ready)
  /stages   the refinement stages and their health
  /reset    start a new conversation
  /help     this text
  /quit     leave (or Ctrl-D)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("MPR_GATEWAY_URL", DEFAULT_URL), help=f"the gateway (default {DEFAULT_URL}; env MPR_GATEWAY_URL)")
    parser.add_argument("--model", help="the target model (default: the first the gateway lists)")
    parser.add_argument("--key", help="client API key (default: env MPR_API_KEY, else OPENAI_API_KEY)")
    parser.add_argument("--admin-key", help="admin key for /status (default: env MPR_ADMIN_KEY)")
    parser.add_argument("--no-stream", action="store_true", help="wait for whole answers instead of streaming them")


class ChatSession:
    """The REPL: reads lines with ``read`` (raises EOFError at the end), writes to ``out``."""

    def __init__(
        self, client: ChatClient, model: str, out: TextIO, *, stream: bool = True, admin_key: str | None = None, color: bool = False
    ) -> None:
        self.client = client
        self.model = model
        self.out = out
        self.stream = stream
        self.admin_key = admin_key
        self.color = color
        self.history: list[dict[str, Any]] = []

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.say(paint(f"error: {text}", "red", self.color))

    def run(self, read: Callable[[str], str]) -> int:
        """Read and answer lines until ``/quit`` or the end of input; 0."""
        self.say(f"chatting with {self.model} through {self.client.url} (/help for commands)")
        while True:
            try:
                line = read("you> ").strip()  # no colour: escape codes would confuse readline
            except EOFError:
                self.say()
                return 0
            except KeyboardInterrupt:
                self.say()
                continue
            if not line:
                continue
            if line.startswith("/"):
                if self.command(line) is False:
                    return 0
                continue
            try:
                self.turn(line)
            except KeyboardInterrupt:
                self.say(paint("\n[interrupted: this turn is not kept]", "yellow", self.color))

    def command(self, line: str) -> bool:
        """Run an in-chat command; False to leave."""
        name = line.split()[0].lower()
        if name in ("/quit", "/exit"):
            return False
        try:
            if name == "/help":
                self.say(HELP)
            elif name == "/reset":
                self.history.clear()
                self.say("new conversation")
            elif name == "/stages":
                for text in stage_lines(self.client.ready(), self.color):
                    self.say(text)
            elif name == "/status":
                self.status()
            else:
                self.error(f"unknown command {name} (/help lists them)")
        except ChatError as exc:
            self.error(str(exc))
        return True

    def status(self) -> None:
        if self.admin_key:
            body = self.client.admin_status(self.admin_key)
            if body is not None:
                for text in status_lines(body, self.color):
                    self.say(text)
                return
            self.say(paint("(this gateway has no /admin/status: showing /ready)", "dim", self.color))
        for text in ready_lines(self.client.ready(), self.color):
            self.say(text)

    def turn(self, prompt: str) -> None:
        """Send ``prompt`` after the history; keep both when the answer came."""
        messages = [*self.history, {"role": "user", "content": prompt}]

        def on_details(answer: Answer) -> None:
            for text in summary_lines(answer.details, answer.refinement, self.color):
                self.say(paint("│ ", "dim", self.color) + text)
            self.out.write(paint("assistant> ", "bold", self.color))
            self.out.flush()

        def on_text(piece: str) -> None:
            self.out.write(piece)
            self.out.flush()

        try:
            answer = self.client.chat(self.model, messages, self.stream, on_details, on_text)
        except ChatError as exc:
            self.say()
            self.error(str(exc))
            return
        self.say()
        refine_ms = answer.refine_ms
        if answer.details is not None and isinstance(answer.details.get("refine_ms"), (int, float)):
            refine_ms = float(answer.details["refine_ms"])
        self.say(paint("│ ", "dim", self.color) + timing_line(Timings(refine_ms, answer.ttft_ms, answer.total_ms), self.color))
        if answer.finish_reason not in (None, "stop"):
            self.say(paint(f"│ finish reason: {answer.finish_reason}", "yellow", self.color))
        self.history = [*messages, {"role": "assistant", "content": answer.text}]


def _readline_history() -> Callable[[], None]:
    """Line editing and a persistent history when ``readline`` exists and stdin is a terminal;
    returns what saves the history at the end."""
    if not sys.stdin.isatty():
        return lambda: None
    try:
        import readline
    except ImportError:
        return lambda: None
    path = HISTORY_FILE.expanduser()
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    return save


def _pick_model(client: ChatClient, wanted: str | None) -> str:
    """``wanted`` (warned about when the gateway does not list it), else the first listed model."""
    models = client.models()
    if wanted:
        if wanted not in models:
            print(f"warning: the gateway does not list {wanted!r} (it has: {', '.join(models) or 'none'})", file=sys.stderr)
        return wanted
    if not models:
        raise ChatError("the gateway lists no models: pass --model")
    return models[0]


def run(args: argparse.Namespace) -> int:
    """The ``chat`` subcommand: 0 at the end of the chat, 2 when the gateway cannot be used."""
    key = args.key or os.environ.get("MPR_API_KEY") or os.environ.get("OPENAI_API_KEY")
    admin_key = args.admin_key or os.environ.get("MPR_ADMIN_KEY") or None
    if admin_key and "," in admin_key:
        admin_key = admin_key.split(",")[0].strip()
    client = ChatClient(args.url, key)
    try:
        try:
            model = _pick_model(client, args.model)
        except ChatError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        color = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None
        save_history = _readline_history()
        session = ChatSession(client, model, sys.stdout, stream=not args.no_stream, admin_key=admin_key, color=color)
        try:
            return session.run(input)
        finally:
            save_history()
    finally:
        client.close()
