"""Talk to HAProxy's runtime API (its admin socket) for the gateway play's rolling restart.

    haproxy-admin SOCKET drain BACKEND SERVER TIMEOUT_S   # out of rotation, wait for its sessions to end
    haproxy-admin SOCKET ready BACKEND SERVER TIMEOUT_S   # back in rotation, wait for UP (health checks)
    haproxy-admin SOCKET wait-up BACKEND TIMEOUT_S        # wait until every server of BACKEND is UP
    haproxy-admin SOCKET show BACKEND                     # name, status, current sessions per server

Prints what it did; exits 1 on a timeout or an error from HAProxy. Standard library only.
"""

from __future__ import annotations

import csv
import socket
import sys
import time


def command(path: str, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers(path: str, backend: str) -> dict[str, dict[str, str]]:
    text = command(path, "show stat").lstrip("# ")
    rows = csv.DictReader(line for line in text.splitlines() if line.strip())
    return {row["svname"]: row for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}


def wait(what: str, timeout: float, done) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            print(f"timed out after {timeout:.0f}s waiting for {what}", file=sys.stderr)
            return False
        time.sleep(0.2)


def set_state(path: str, backend: str, server: str, state: str) -> None:
    answer = command(path, f"set server {backend}/{server} state {state}").strip()
    if answer:
        raise SystemExit(f"haproxy: {answer}")


def main(argv: list[str]) -> int:
    path, action, backend = argv[0], argv[1], argv[2]
    if action == "show":
        for name, row in servers(path, backend).items():
            print(name, row["status"], row["scur"])
        return 0
    if action == "wait-up":
        timeout = float(argv[3])
        ok = wait(f"every server of {backend} UP", timeout,
                  lambda: all(row["status"] == "UP" for row in servers(path, backend).values()))
        print(" ".join(f"{name}={row['status']}" for name, row in servers(path, backend).items()))
        return 0 if ok else 1
    server, timeout = argv[3], float(argv[4])
    if server not in servers(path, backend):
        raise SystemExit(f"haproxy: no server {server} in backend {backend}")
    if action == "drain":
        # DRAIN: no new requests (keep-alive clients included: each request is balanced), the
        # ones in flight (streams) finish; health checks go on.
        set_state(path, backend, server, "drain")
        ok = wait(f"{backend}/{server} to finish its requests", timeout,
                  lambda: int(servers(path, backend)[server]["scur"] or 0) == 0)
        print(f"{backend}/{server} drained" if ok else f"{backend}/{server} still busy")
        return 0 if ok else 1
    if action == "ready":
        set_state(path, backend, server, "ready")
        ok = wait(f"{backend}/{server} UP", timeout, lambda: servers(path, backend)[server]["status"] == "UP")
        print(f"{backend}/{server} {servers(path, backend)[server]['status']}")
        return 0 if ok else 1
    raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
