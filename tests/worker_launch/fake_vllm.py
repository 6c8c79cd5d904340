"""A stand-in for ``python -m vllm.entrypoints.openai.api_server`` in supervisor tests.

Accepts vLLM's command line, serves ``/health`` and ``/v1/models`` (base + ``--lora-modules``
names). Behaviour from the environment: ``FAKE_VLLM_DROP`` (a LoRA name not to list),
``FAKE_VLLM_CRASH_AFTER_S`` + ``FAKE_VLLM_STATE`` (crash once, on the first run only),
``FAKE_VLLM_EXIT_AT_START`` (exit 1 at once), ``FAKE_VLLM_CHILD_PIDFILE`` (start a child process,
like vLLM's engine core, and write its pid).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["-m"]:
        args = args[2:]
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--lora-modules", nargs="+", default=[])
    known, _ = parser.parse_known_args(args)
    if os.environ.get("FAKE_VLLM_EXIT_AT_START"):
        sys.exit(1)
    drop = os.environ.get("FAKE_VLLM_DROP")
    names = [known.served_model_name or known.model] + [json.loads(m)["name"] for m in known.lora_modules]
    models = {"object": "list", "data": [{"id": n, "object": "model"} for n in names if n != drop]}
    if pidfile := os.environ.get("FAKE_VLLM_CHILD_PIDFILE"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(pidfile).write_text(str(child.pid))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"" if self.path == "/health" else json.dumps(models).encode()
            self.send_response(200 if self.path in ("/health", "/v1/models") else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((known.host, known.port), Handler)
    state = os.environ.get("FAKE_VLLM_STATE")
    crash_after = float(os.environ.get("FAKE_VLLM_CRASH_AFTER_S", "0"))
    if crash_after and state and not Path(state).exists():
        Path(state).write_text("crashed once")

        def crash() -> None:
            time.sleep(crash_after)
            os._exit(9)

        threading.Thread(target=crash, daemon=True).start()
    print(f"fake vLLM serving {names} on {known.host}:{known.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
