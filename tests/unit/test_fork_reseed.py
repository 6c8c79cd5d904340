"""Process-unique values re-made in a forked worker (serve --workers N forks from a supervisor
that imported everything first)."""

from __future__ import annotations


def test_a_forked_process_has_its_own_request_ids() -> None:
    """Workers forked from the supervisor (which imported the module) must not hand out the same
    request ids, nor report the supervisor's start time."""
    import os

    from gateway.admin import status
    from gateway.telemetry.logcontext import new_request_id

    mine = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and start time, then leave at once
        try:
            os.write(write, f"{new_request_id()} {status.STARTED_WALL}".encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id, child_started = os.read(read, 200).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id.split("-")[0] != mine.split("-")[0]
    assert float(child_started) > status.STARTED_WALL
