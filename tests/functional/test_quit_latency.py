"""A stop waits no longer than it needs: through the real worker (the fault-injection backend)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil

from tests.conftest import ROOT
from tests.functional.helpers import model_spec, scheduler_for, write_suite
from tests.functional.test_cli import vlmtui, wait_for_log
from tests.functional.test_reliability import FAULT_ENV, FAULT_WORKER, fault_case, until
from tests.functional.worker_driver import WorkerDriver
from vlmtui.engine.events import CaseFinished, Notice, SessionFinished, TokenReceived, WorkerExited
from vlmtui.engine.worker_session import WorkerSession
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

QUICK = ModelSpec(id="quick", backend="fault", path="fault:1:10")
"""Loads at once; a token every 10 ms."""
SLOW_UNLOAD = ModelSpec(id="slow-unload", backend="slow-unload", path="fault:1:10")
"""The same, but its unload takes 2 s (tests/fixtures/slow_unload_worker.py)."""
SLOW_UNLOAD_WORKER = [FAULT_WORKER[0], "-m", "tests.fixtures.slow_unload_worker"]


async def test_a_stop_mid_case_goes_on_when_the_worker_answers_and_keeps_the_aborted_case() -> None:
    # A grace far longer than the test: only the worker's answer (its aborted result) can end the stop early.
    scheduler, recorder = scheduler_for([fault_case("quick/long", QUICK, 100_000)],
                                        guard=GuardConfig(grace_s=30.0, term_grace_s=30.0),
                                        worker_argv=FAULT_WORKER, worker_env=FAULT_ENV)
    run = asyncio.create_task(scheduler.run(keep_alive=True))
    await until(lambda: recorder.of(TokenReceived), timeout=60)
    started = time.monotonic()
    scheduler.stop("quit by the user")
    await asyncio.wait_for(run, 60)
    elapsed = time.monotonic() - started
    (finished,) = recorder.of(CaseFinished)
    assert finished.result.status == "aborted" and finished.result.output, finished.result
    (exited,) = recorder.of(WorkerExited) or [None]
    assert exited is None or exited.returncode == 0, exited  # it left by itself, not by a signal
    assert elapsed < 10.0, f"the stop took {elapsed:.2f} s"
    print(f"\nstop mid-case → engine done: {elapsed:.3f} s")


async def test_a_worker_that_does_not_answer_the_shutdown_is_ended_after_the_grace_not_5_s() -> None:
    config = GuardConfig(grace_s=0.5, term_grace_s=0.5)
    scheduler, recorder = scheduler_for([fault_case("quick/c", QUICK, 5)], guard=config,
                                        worker_argv=FAULT_WORKER, worker_env=FAULT_ENV)
    run = asyncio.create_task(scheduler.run(keep_alive=True))
    await until(lambda: recorder.of(CaseFinished), timeout=60)
    pid = scheduler.session.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # stuck: it can neither read the shutdown nor exit by itself
    started = time.monotonic()
    try:
        scheduler.stop("quit by the user")
        await asyncio.wait_for(run, 60)
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)
    elapsed = time.monotonic() - started
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    # The grace for an answer (0.5 s), then SIGTERM and SIGKILL 0.5 s later: about 1 s. It waited 5 s before
    # the first signal (5.5 s in all).
    assert elapsed < 4.0, f"the stop took {elapsed:.2f} s"
    assert recorder.of(SessionFinished)
    print(f"\nstuck worker: stop → engine done: {elapsed:.3f} s")


async def test_a_worker_that_answers_the_shutdown_gets_to_finish_its_unload() -> None:
    # An unload of 2 s, four times the grace: the worker said it is exiting, so it is not signalled meanwhile
    # (a process SIGKILLed while it holds wired Metal memory can leave that memory wired until reboot).
    config = GuardConfig(grace_s=0.5, term_grace_s=0.5)
    scheduler, recorder = scheduler_for([fault_case("slow-unload/c", SLOW_UNLOAD, 5)], guard=config,
                                        worker_argv=SLOW_UNLOAD_WORKER, worker_env=FAULT_ENV)
    run = asyncio.create_task(scheduler.run(keep_alive=True))
    await until(lambda: recorder.of(CaseFinished), timeout=60)
    client = scheduler.session.worker
    assert client is not None and client.process is not None
    started = time.monotonic()
    scheduler.stop("quit by the user")
    await asyncio.wait_for(run, 60)
    elapsed = time.monotonic() - started
    assert not recorder.of(WorkerExited), "the worker's exit was expected: no crash to report"
    assert client.process.returncode == 0, "the worker was signalled in the middle of its unload"
    assert elapsed >= 1.5, f"the unload takes 2 s, the stop returned after {elapsed:.2f} s"
    (finished,) = recorder.of(CaseFinished)
    assert finished.result.status == "passed", finished.result


def test_a_sigterm_while_the_backend_is_imported_drops_the_load() -> None:
    # The openai backend's module takes ~1 s to import (the openai package) before its load starts the server;
    # a SIGTERM in that second was noted and the whole load (a server start, a model read) then ran anyway,
    # until SIGKILL came term_grace_s later: not the clean exit that gives wired Metal memory back.
    worker = WorkerDriver()
    try:
        worker.wait_for(p.Hello, timeout_s=60)
        model = model_spec(id="served", backend="openai", server="mlx-vlm", path="tiny:idefics3")
        worker.send(p.Load(model=model.to_dict(), sample_ms=500))
        time.sleep(0.3)  # the Load has reached the main thread; the backend's import has begun
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=60) == 0
        seen = []
        while (event := worker.events.get(timeout=10)) is not None:
            seen.append(event)
        assert not [e for e in seen if isinstance(e, p.Loaded | p.LoadFailed)], seen
        assert [e for e in seen if isinstance(e, p.Exiting)], seen
    finally:
        if worker.process.poll() is None:
            worker.process.kill()


SLOW_TINY = """
prompts = ["Describe this image."]

[[models]]
id = "slow"
backend = "transformers"
path = "tiny:idefics3"
max_tokens = 5000
"""


def test_ctrl_c_mid_generation_ends_vlmtui_at_the_next_token_and_logs_the_aborted_case(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SLOW_TINY, images=str(ROOT / "sample_images" / "lake.jpg"))
    log = tmp_path / "log.jsonl"
    proc = vlmtui("run", str(suite), "--headless", "--log", str(log))
    try:
        wait_for_log(log, lambda lines: any(line["event"] == "case_start" for line in lines))
        time.sleep(1.0)  # mid-generation: 5000 tokens of a tiny model take far longer
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - started
    assert proc.returncode == 130, out + err
    (end,) = [line for line in wait_for_log(log, lambda lines: True) if line["event"] == "case_end"]
    assert end["status"] == "aborted" and end["output"], end  # nothing lost: what it said before the stop
    # 0.3-0.9 s here (quit → vlmtui's exit, the worker gone); a grace or a signal would show as seconds.
    assert elapsed < 10.0, f"{elapsed:.2f} s"
    print(f"\nCtrl-C mid-generation → exit: {elapsed:.2f} s")


async def test_a_worker_retired_for_a_spare_answers_its_shutdown_without_a_warning() -> None:
    # At a switch to a warmed spare the session still holds the old worker while it stops it: that worker's
    # answer to Shutdown (Exiting) is expected, not "the worker is exiting; a fresh one takes the next case".
    events: list[object] = []
    session = WorkerSession(events.append, GuardConfig(), FAULT_WORKER, FAULT_ENV, lambda cleaned: None)
    loaded = await session.load(QUICK, 0)
    assert isinstance(loaded, p.Loaded), loaded
    old = session.worker
    assert old is not None
    await session.spares.succeed(old, None, lambda event: None, lambda returncode: None)
    assert old.exited.is_set() and old.process is not None and old.process.returncode == 0
    assert not [e for e in events if isinstance(e, Notice)], events
