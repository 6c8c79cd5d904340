"""``serve --workers N`` forks its workers: the supervisor with a callable worker body (signals,
restarts, exit codes, the environment, a SIGTERM that lands during the fork), what it preloads, and
the lexicon's compact near-miss index (:class:`~gateway.refinement.lexicon.DeletesIndex`)."""

from __future__ import annotations

import os
import pickle
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from gateway.config.models import GatewayConfig
from gateway.refinement.lexicon import DeletesIndex, Lexicon, lexicon
from gateway.serving.supervisor import ForkedProcess, Supervisor
from gateway.serving.worker import uses_language_model


def _signal_later(supervisor: Supervisor, delay_s: float) -> None:
    threading.Timer(delay_s, supervisor._on_signal, (signal.SIGTERM, None)).start()


def _sleeper(early: list[int]) -> int:
    """A worker body that exits 0 on SIGTERM (also one received before it ran)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if early:
        return 0
    stop.wait(30)
    return 0


def test_forked_workers_get_sigterm_and_the_supervisor_exits_0() -> None:
    sup = Supervisor(_sleeper, 2, {}, stop_timeout_s=10, min_uptime_s=0)
    _signal_later(sup, 1.0)
    started = time.monotonic()
    assert sup.run(poll_s=0.05) == 0
    assert time.monotonic() - started < 5
    assert all(isinstance(w.proc, ForkedProcess) for w in sup.workers)
    assert [w.proc.returncode for w in sup.workers] == [0, 0]


def test_a_forked_worker_runs_in_its_own_process_group_with_the_given_environment(tmp_path: Path) -> None:
    out = tmp_path / "child"

    def body(early: list[int]) -> int:
        out.write_text(f"{os.getpgid(0)} {os.getpid()} {os.environ.get('MPR_TEST_FORK')} {signal.getsignal(signal.SIGHUP) == signal.SIG_IGN}")
        return 0

    sup = Supervisor(body, 1, {**os.environ, "MPR_TEST_FORK": "yes"}, stop_timeout_s=5, min_uptime_s=0)
    _signal_later(sup, 0.5)
    sup.run(poll_s=0.05)
    pgid, pid, value, hup_ignored = out.read_text().split()
    assert pgid == pid and value == "yes" and hup_ignored == "True"
    assert os.environ.get("MPR_TEST_FORK") is None  # the supervisor's own environment is untouched


def test_a_forked_worker_that_cannot_start_stops_the_server() -> None:
    sup = Supervisor(lambda early: 3, 2, {}, stop_timeout_s=5, min_uptime_s=30)
    assert sup.run(poll_s=0.05) == 1
    assert {w.proc.returncode for w in sup.workers} <= {3}


def test_a_forked_worker_that_exits_while_serving_is_forked_again() -> None:
    sup = Supervisor(lambda early: (time.sleep(0.3), 0)[1], 1, {}, stop_timeout_s=5, min_uptime_s=0.1)
    first: list[int] = []
    threading.Timer(0.15, lambda: first.append(sup.workers[0].proc.pid)).start()
    _signal_later(sup, 1.2)
    sup.run(poll_s=0.05)
    assert first and sup.workers[0].proc.pid != first[0]


def test_a_crash_in_a_forked_worker_is_an_exit_1_and_never_returns_into_the_supervisor() -> None:
    def crash(early: list[int]) -> int:
        raise RuntimeError("boom")

    sup = Supervisor(crash, 1, {}, stop_timeout_s=5, min_uptime_s=30)
    assert sup.run(poll_s=0.05) == 1  # the child's exception did not unwind into this test
    assert sup.workers[0].proc.returncode == 1


def test_a_stubborn_forked_worker_is_killed_past_the_timeout() -> None:
    def stubborn(early: list[int]) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)
        return 0

    sup = Supervisor(stubborn, 1, {}, stop_timeout_s=0.5, min_uptime_s=0)
    _signal_later(sup, 0.5)
    assert sup.run(poll_s=0.05) == 1
    assert sup.workers[0].proc.returncode == -signal.SIGKILL


def test_a_sigterm_sent_as_the_worker_is_forked_reaches_the_worker_early(tmp_path: Path) -> None:
    """Signals are blocked across the fork: one sent at once is recorded for the worker's server
    (``early``), not lost in the child's copy of the supervisor's handlers."""
    out = tmp_path / "early"

    def body(early: list[int]) -> int:
        deadline = time.monotonic() + 5
        while not early and time.monotonic() < deadline:
            time.sleep(0.01)
        out.write_text(repr(early))
        return 0

    sup = Supervisor(body, 1, {}, stop_timeout_s=5, min_uptime_s=0)
    proc = sup._spawn().proc
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 0
    assert out.read_text() == repr([int(signal.SIGTERM)])


def test_forked_process_reports_a_signal_as_popen_does() -> None:
    sup = Supervisor(lambda early: (time.sleep(30), 0)[1], 1, {}, stop_timeout_s=5)
    proc = sup._spawn().proc
    assert proc.poll() is None
    proc.kill()
    assert proc.wait(5) == -signal.SIGKILL and proc.poll() == -signal.SIGKILL


def _config(**refinement: object) -> GatewayConfig:
    adapter = {"endpoints": ["http://127.0.0.1:9/v1"], "model": "cleaner", "prompt": str(Path(__file__).resolve().parents[2] / "lora_adapters" / "cleaner" / "prompt.md")}
    tree = {
        "targets": [{"name": "t", "endpoints": ["http://127.0.0.1:9/v1"]}],
        "adapters": {"cleaner": adapter},
        "refinement": refinement,
    }
    return GatewayConfig.model_validate(tree)


def test_the_language_model_is_preloaded_only_when_the_runtime_loads_it() -> None:
    assert uses_language_model(_config())
    assert not uses_language_model(_config(skip_gate={"context_check": False}))
    assert not uses_language_model(_config(skip_gate={"enabled": False}))
    no_adapters = GatewayConfig.model_validate({"targets": [{"name": "t", "endpoints": ["http://127.0.0.1:9/v1"]}]})
    assert not uses_language_model(no_adapters)
    with_cleaner = GatewayConfig.model_validate({**no_adapters.model_dump(mode="json"), "refinement": {"builtin_cleaner": "always"}})
    assert uses_language_model(with_cleaner)


# -- the lexicon's near-miss index ---------------------------------------------------------------


def test_deletes_index_answers_as_the_dict_it_was_built_from() -> None:
    words = ["receive", "believe", "the", "then", "they", "there", "hello", "help", "word", "world", "a"]
    index = Lexicon.deletes_index(words)
    compact = DeletesIndex(index)
    assert len(compact) == len(index)
    for key, value in index.items():
        assert compact.get(key) == value
    rng = random.Random(7)
    for _ in range(2000):
        probe = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz'") for _ in range(rng.randint(0, 8)))
        assert compact.get(probe, ()) == index.get(probe, ())
    assert compact.get("zzzz", ("x",)) == ("x",)
    again = pickle.loads(pickle.dumps(compact, protocol=pickle.HIGHEST_PROTOCOL))
    assert all(again.get(key) == value for key, value in index.items())
    assert DeletesIndex({}).get("a") == ()


def test_deletes_index_keeps_colliding_keys_apart() -> None:
    # "plumless" and "buckeroo" have the same CRC-32: both stay keys, each with its own words
    import zlib

    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    compact = DeletesIndex({"plumless": ("one",), "buckeroo": ("two", "three")})
    assert compact.get("plumless") == ("one",) and compact.get("buckeroo") == ("two", "three")


def test_the_lexicon_neighbours_come_from_the_compact_index() -> None:
    lex = lexicon()
    assert isinstance(lex._index, DeletesIndex)
    assert lex.neighbours("recieve")[0] == "receive"
    assert lex.near_miss("teh") == "the"
    assert "believe" in lex.neighbours("beleive")


@pytest.mark.parametrize("word", ["recieve", "teh", "wrold", "adn", "becuase"])
def test_neighbours_are_what_the_dict_index_gave(word: str) -> None:
    lex = lexicon()
    common = {w for w in lex._index._words}  # the common words the index was built from
    reference = Lexicon(lex.table, Lexicon.deletes_index(sorted(common)), lex._bigrams)
    reference._index = Lexicon.deletes_index(sorted(common))  # type: ignore[assignment]  # the old storage
    assert sorted(lex.neighbours(word)) == sorted(reference.neighbours(word))
    assert lex.neighbours(word) == tuple(sorted(lex.neighbours(word), key=lex.table.zipf, reverse=True))


def test_workers_are_spawned_when_asked_or_when_a_thread_runs_at_fork_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.serving import supervisor

    monkeypatch.setattr(supervisor, "preload", lambda path: None)
    monkeypatch.setattr(supervisor.heap, "freeze_preloaded", lambda: None)
    threads = [1]  # what threading.active_count() says at fork time (the test run's own threads aside)
    monkeypatch.setattr(supervisor.threading, "active_count", lambda: threads[0])
    assert callable(supervisor._worker_command("/x.yaml", "127.0.0.1", 8000))
    monkeypatch.setenv("MPR_WORKER_START", "spawn")
    spawned = supervisor._worker_command("/x.yaml", "127.0.0.1", 8000)
    assert isinstance(spawned, list) and spawned[1:3] == ["-m", "gateway.serving.worker"]
    monkeypatch.delenv("MPR_WORKER_START")
    threads[0] = 2  # a thread runs: a fork would copy its locks, not the thread
    assert isinstance(supervisor._worker_command("/x.yaml", "127.0.0.1", 8000), list)


def test_the_redis_client_and_the_tracing_sdk_are_preloaded_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.serving.worker import _optional_modules

    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert _optional_modules(_config()) == ()
    tree = _config().model_dump(mode="json")
    with_both = GatewayConfig.model_validate({**tree, "state": {"redis_url": "redis://127.0.0.1:1/0"}, "telemetry": {"traces_exporter": "otlp_http"}})
    names = _optional_modules(with_both)
    assert "gateway.state.redis_state" in names and "opentelemetry.exporter.otlp.proto.http.trace_exporter" in names
    grpc = GatewayConfig.model_validate({**tree, "telemetry": {"traces_exporter": "otlp_grpc"}})
    assert not any("grpc" in name for name in _optional_modules(grpc))
