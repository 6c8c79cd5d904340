"""``mpr-gateway --help`` and every command's ``--help`` (the real console script): each command
is named in the top-level help, every option and argument says what it is for, and no raw reST
markup (double backticks) reaches a terminal."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser
from tests.support.gateway_proc import REPO

SCRIPT = Path(sys.executable).with_name("mpr-gateway")


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _help(*args: str) -> str:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "gateway"]
    result = subprocess.run([*command, *args, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_top_level_help_names_every_command_without_markup() -> None:
    text = _help()
    description = build_parser().description or ""
    for name in _commands():
        assert name in description, name  # the one-line summary lists it, not only argparse's choices
    assert {"serve", "check-config", "demo", "eval", "chat", "status", "usage", "hash-key"} <= set(_commands())
    assert "``" not in text


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_of_every_command_is_explained(name: str) -> None:
    parser = _commands()[name]
    unexplained = [a.option_strings or [a.dest] for a in parser._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert unexplained == []
    assert "``" not in parser.format_help()


def test_demo_help_explains_host_port_and_the_target_api() -> None:
    text = " ".join(_help("demo").split())
    assert "--host HOST address to listen on" in text and "--port PORT port to listen on" in text
    assert "--target-api {chat,responses}" in text
