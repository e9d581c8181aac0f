"""Reliability of the worker session, with the real worker and the fault-injection model (issue 11).

An abort hits only what it was aimed at; a worker of another protocol is refused; the user's actions
and the guard's stay apart; a worker is asked to exit (SIGTERM) before it is killed (SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.functional.helpers import Recorder, scheduler_for, write_suite
from vlmtui.engine.events import (
    CaseFinished,
    CaseStarted,
    GuardEvent,
    MemoryUpdate,
    ModelLoading,
    Notice,
    SessionFinished,
    TokenReceived,
    WorkerExited,
)
from vlmtui.engine.plan import Case
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog, load_log
from vlmtui.engine.worker_client import WorkerClient
from vlmtui.engine.worker_session import LoadCut, WorkerSession
from vlmtui.memory.budget import Budget
from vlmtui.suite.loader import GuardConfig, SuiteError, load_suite
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import Expect, ModelSpec

MiB = 1024 * 1024
FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.fault_worker"]
FAULT_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def fault_case(case_id: str, model: ModelSpec, steps: int, prompt: str = "eat") -> Case:
    return Case(case_id, model, prompt, None, 0, steps, 0.0, Expect())


def guarded(cases: list[Case], *, budget_mib: int = 4096, argv: list[str] | None = None,
            **guard: Any) -> tuple[Scheduler, Recorder]:
    """A scheduler on the fault worker; the guard acts at 50/60/80 % of ``budget_mib``."""
    config = GuardConfig(**{"budget": f"{budget_mib}MiB", "warn": 50, "cleanup": 60, "abort": 80, "sample_ms": 50,
                            "grace_s": 1.0, "log_every_ms": 50, **guard})
    return scheduler_for(cases, guard=config, budget=Budget(budget_mib * MiB, f"explicit {budget_mib}MiB"),
                         worker_argv=argv or FAULT_WORKER, worker_env=FAULT_ENV)


async def until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` is true (polling the loop, so the engine runs meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def crashed(recorder: Recorder) -> list[Any]:
    return [e.result for e in recorder.of(CaseFinished) if e.result.status == "crashed"]


# ---------------------------------------------------------------- item 1: an abort hits only its target


async def test_an_idle_guard_abort_does_not_abort_the_rerun_of_the_failed_cases() -> None:
    # The first attempt of m/x is aborted by the user (so it is a failed case); m/hold leaves 300 MiB on
    # the fake device after it ends, so the guard aborts the model while no case runs.
    model = ModelSpec(id="m", backend="fault", path="fault:0.01:5:8:1")
    cases = [fault_case("m/x", model, 40), fault_case("m/hold", model, 3, "hold 300")]
    scheduler, recorder = guarded(cases, budget_mib=256)

    def abort_the_first_attempt(event: object) -> None:
        if isinstance(event, TokenReceived) and event.case_id == "m/x" and not scheduler.results["m/x"]:
            scheduler.abort_current("aborted by the user")

    scheduler.subscribe(abort_the_first_attempt)
    task = asyncio.create_task(scheduler.run(keep_alive=True))
    await until(lambda: [e for e in recorder.of(GuardEvent) if e.action == "abort"])
    abort = next(e for e in recorder.of(GuardEvent) if e.action == "abort")
    assert abort.case_id is None, "the guard aborted the idle model"
    # The worker unloaded the model: its memory is RSS again, not the fake device.
    await until(lambda: [u for u in recorder.of(MemoryUpdate) if u.t > abort.t and u.guarded_source == "rss"])
    assert scheduler.latest()["m/hold"].status == "passed"

    assert scheduler.rerun(scheduler.failed_case_ids()) == ["m/x"]
    await until(lambda: len(scheduler.results["m/x"]) == 2)
    scheduler.stop("the test is over")
    await asyncio.wait_for(task, 30)
    rerun = scheduler.results["m/x"][-1]
    assert [r.status for r in scheduler.results["m/x"]] == ["aborted", "passed"], rerun.error
    assert not crashed(recorder)


async def _next_of(events: asyncio.Queue[p.Event], kind: type[p.Event], timeout: float = 30.0) -> Any:
    while True:
        event = await asyncio.wait_for(events.get(), timeout)
        if isinstance(event, kind):
            return event


@contextlib.asynccontextmanager
async def _loaded_fault_worker() -> AsyncIterator[tuple[WorkerClient, asyncio.Queue[p.Event]]]:
    """The real worker, driven with no engine in between, with a fast fault model loaded; its events queued."""
    events: asyncio.Queue[p.Event] = asyncio.Queue()
    worker = WorkerClient(events.put_nowait, lambda returncode: None, FAULT_WORKER, FAULT_ENV)
    await worker.start()
    try:
        model = ModelSpec(id="m", backend="fault", path="fault:0.01:5")
        worker.send(p.Load(model=model.to_dict()))
        await _next_of(events, p.Loaded)
        yield worker, events
    finally:
        await worker.stop()


async def test_an_abort_that_arrives_after_its_case_ended_does_not_abort_a_rerun_of_that_case() -> None:
    async with _loaded_fault_worker() as (worker, events):
        worker.send(p.Run(case_id="m/a", prompt="eat", max_tokens=3))
        assert (await _next_of(events, p.Result)).outcome == "completed"
        # The user's abort left just as the case ended: it names a case that no longer runs.
        worker.send(p.Abort(case_id="m/a", reason="aborted by the user"))
        worker.send(p.Run(case_id="m/a", prompt="eat", max_tokens=3))
        rerun = await _next_of(events, p.Result)
        assert rerun.outcome == "completed", rerun.error
        # An abort sent right behind its case's Run still stops that case.
        worker.send(p.Run(case_id="m/b", prompt="eat", max_tokens=400))
        worker.send(p.Abort(case_id="m/b", reason="aborted by the user"))
        stopped = await _next_of(events, p.Result)
        assert (stopped.case_id, stopped.outcome, stopped.error) == ("m/b", "aborted", "aborted by the user")


async def test_a_cleanup_that_arrives_as_its_case_ends_is_answered_while_the_worker_is_idle() -> None:
    async with _loaded_fault_worker() as (worker, events):
        # Sent after the case's last token but before it ends: it must not wait for a next case.
        worker.send(p.Run(case_id="m/a", prompt="linger 0.5", max_tokens=1))
        await _next_of(events, p.Token)
        worker.send(p.Cleanup(reason="requested by the user"))
        seen: dict[type, Any] = {}
        async with asyncio.timeout(10):  # the Cleaned may come before or after the Result
            while not (p.Result in seen and p.Cleaned in seen):
                event = await events.get()
                if isinstance(event, p.Result | p.Cleaned):
                    seen[type(event)] = event
        assert seen[p.Result].outcome == "completed"
        assert seen[p.Cleaned].reason == "requested by the user"


async def test_a_load_the_guard_cuts_just_as_it_finishes_ends_aborted_and_no_case_starts_on_the_dying_worker() -> None:
    session = WorkerSession(lambda event: None, GuardConfig(term_grace_s=2.0), FAULT_WORKER, FAULT_ENV,
                            lambda cleaned: None)
    model = ModelSpec(id="m", backend="fault", path="fault:0.01:5")
    load = asyncio.create_task(session.load(model, 0))
    while session._reply is None:  # set as the Load goes out
        await asyncio.sleep(0)
    # The event loop is held while the worker finishes its load and writes Loaded; the guard's cut then
    # finds a worker that is no longer loading (seen with the demo under a 64 MiB budget: the case that
    # started next was recorded as crashed with "the worker exited with code 0").
    time.sleep(3.0)
    assert session.cut_load("worker memory over the abort line", by_guard=True)
    outcome = await asyncio.wait_for(load, 10)
    assert isinstance(outcome, LoadCut), outcome
    assert (outcome.status, outcome.by_guard) == ("aborted", True)
    assert session.loaded is None


# ---------------------------------------------------------------- item 3: the protocol version is checked

OLD_WORKER = """
import json, os, sys
print(json.dumps({"type": "hello", "pid": os.getpid(), "python": "3.9.0", "protocol": 0}), flush=True)
with open(sys.argv[1], "w") as heard:
    for line in sys.stdin:
        heard.write(line)
        heard.flush()
"""


async def test_a_worker_of_another_protocol_is_refused_in_one_line_and_runs_nothing(tmp_path: Path) -> None:
    script, heard = tmp_path / "old_worker.py", tmp_path / "heard.jsonl"
    script.write_text(OLD_WORKER)
    model = ModelSpec(id="m", backend="fault", path="fault:0.01:1")
    scheduler, recorder = guarded([fault_case("m/a", model, 3), fault_case("m/b", model, 3)],
                                  argv=[sys.executable, str(script), str(heard)])
    counts = await asyncio.wait_for(scheduler.run(), 20)

    errors = [n.message for n in recorder.of(Notice) if n.level == "error"]
    assert len(errors) == 1, errors
    line = errors[0]
    print(line)
    assert "\n" not in line
    assert "protocol 0" in line and f"protocol {p.PROTOCOL_VERSION}" in line and sys.executable in line
    finished = recorder.of(SessionFinished)[0]
    assert finished.stopped and finished.reason == line
    assert counts == {"pending": 2}
    assert not recorder.of(CaseStarted) and not recorder.of(ModelLoading)
    said = [json.loads(raw)["type"] for raw in heard.read_text().splitlines()] if heard.exists() else []
    assert "load" not in said and "run" not in said, said


# ---------------------------------------------------------------- item 4: user actions are not guard actions


async def test_a_users_stop_during_a_load_is_not_a_guard_abort(tmp_path: Path) -> None:
    # A 5 s load; the user quits 0.3 s into it. With on_abort = "stop", a guard abort would end the session
    # in the guard's name; the user's stop must stay the user's.
    slow = ModelSpec(id="slow", backend="fault", path="fault:0.01:100:8:50")
    scheduler, recorder = guarded([fault_case("slow/a", slow, 3), fault_case("slow/b", slow, 3)], on_abort="stop")
    log = SessionLog(tmp_path / "log.jsonl", memory_every_s=0.05)
    scheduler.subscribe(log)
    loop = asyncio.get_running_loop()
    scheduler.subscribe(lambda e: loop.call_later(0.3, scheduler.stop, "quit by the user")
                        if isinstance(e, ModelLoading) else None)
    counts = await asyncio.wait_for(scheduler.run(), 30)
    log.close()

    first = scheduler.latest()["slow/a"]
    assert first.status == "aborted"
    assert first.error.startswith("the session stopped the load of slow"), first.error
    assert "memory guard" not in first.error
    assert recorder.of(SessionFinished)[0].reason == "quit by the user"
    assert counts == {"aborted": 1, "pending": 1}
    assert not recorder.of(GuardEvent)
    assert load_log(tmp_path / "log.jsonl").guard == []


async def test_a_users_cleanup_is_a_notice_and_guard_events_come_only_from_the_guard(tmp_path: Path) -> None:
    model = ModelSpec(id="m", backend="fault", path="fault:2:10")
    scheduler, recorder = guarded([fault_case("m/a", model, 40)])  # 4 GiB: the guard never acts
    log = SessionLog(tmp_path / "log.jsonl", memory_every_s=0.05)
    scheduler.subscribe(log)
    asked: list[bool] = []

    def cleanup_on_a_token(event: object) -> None:
        if isinstance(event, TokenReceived) and len(recorder.of(TokenReceived)) == 5 and not asked:
            asked.append(True)
            scheduler.cleanup_now("requested by the user")

    scheduler.subscribe(cleanup_on_a_token)
    assert await asyncio.wait_for(scheduler.run(), 30) == {"passed": 1}
    log.close()
    assert asked
    assert not recorder.of(GuardEvent)
    assert load_log(tmp_path / "log.jsonl").guard == []
    cleaned = [n.message for n in recorder.of(Notice) if "cleanup" in n.message]
    assert len(cleaned) == 1 and "requested by the user" in cleaned[0] and "freed" in cleaned[0], cleaned


# ---------------------------------------------------------------- item 6: SIGTERM first, SIGKILL after a grace


async def test_sigterm_mid_case_aborts_the_case_and_the_worker_exits_0_within_the_grace() -> None:
    model = ModelSpec(id="m", backend="fault", path="fault:0.01:20")
    cases = [fault_case("m/long", model, 500), fault_case("m/next", model, 3)]
    scheduler, recorder = guarded(cases)
    sent: list[float] = []

    def sigterm_on_the_first_token(event: object) -> None:
        pid = scheduler.worker_pid
        if isinstance(event, TokenReceived) and event.case_id == "m/long" and pid and not sent:
            sent.append(time.time())
            os.kill(pid, signal.SIGTERM)

    scheduler.subscribe(sigterm_on_the_first_token)
    counts = await asyncio.wait_for(scheduler.run(), 60)

    long = scheduler.latest()["m/long"]
    assert long.status == "aborted" and "stopped" in long.error, long
    assert long.metrics["gen_tokens"] < 500
    exits = recorder.of(WorkerExited)
    assert [e.returncode for e in exits] == [0], [e.description for e in exits]
    took = exits[0].t - sent[0]
    print(f"SIGTERM mid-case: worker exited 0 after {took * 1000:.0f} ms")
    assert took < GuardConfig().term_grace_s
    assert scheduler.latest()["m/next"].status == "passed"
    assert counts == {"aborted": 1, "passed": 1}
    assert not crashed(recorder)


def _abort_soon_after_start(scheduler: Scheduler, case_id: str, delay: float = 0.2) -> Callable[[object], None]:
    loop = asyncio.get_running_loop()

    def subscriber(event: object) -> None:
        if isinstance(event, CaseStarted) and event.case_id == case_id:
            loop.call_later(delay, scheduler.abort_current, "aborted by the user")

    return subscriber


async def test_a_worker_late_to_stop_gets_sigterm_and_exits_0_before_the_sigkill() -> None:
    # Each step takes 1 s: the abort (at 0.2 s) is seen only at the end of the first step, after grace_s
    # (0.3 s), so the parent sends SIGTERM; the worker stops at that token and exits long before the SIGKILL.
    slow = ModelSpec(id="slow", backend="fault", path="fault:0.01:1000")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    scheduler, recorder = guarded([fault_case("slow/a", slow, 5), fault_case("calm/a", calm, 3)], grace_s=0.3)
    scheduler.subscribe(_abort_soon_after_start(scheduler, "slow/a"))
    counts = await asyncio.wait_for(scheduler.run(), 60)

    slow_result = scheduler.latest()["slow/a"]
    assert (slow_result.status, slow_result.error) == ("aborted", "aborted by the user")
    assert [e.returncode for e in recorder.of(WorkerExited)] == [0]
    assert any("did not stop within 0.3 s" in n.message for n in recorder.of(Notice))
    assert counts == {"aborted": 1, "passed": 1}
    assert not crashed(recorder)


async def test_a_worker_that_ignores_sigterm_is_killed_after_the_term_grace() -> None:
    stuck = ModelSpec(id="stuck", backend="fault", path="fault:0.01:4000")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    cases = [fault_case("stuck/a", stuck, 3, "ignore-sigterm"), fault_case("calm/a", calm, 3)]
    scheduler, recorder = guarded(cases, grace_s=0.3)
    scheduler.subscribe(_abort_soon_after_start(scheduler, "stuck/a"))
    counts = await asyncio.wait_for(scheduler.run(), 60)

    stuck_result = scheduler.latest()["stuck/a"]
    assert stuck_result.status == "aborted", stuck_result
    assert stuck_result.error == "aborted by the user (worker killed after 0.3 s)"
    assert [e.returncode for e in recorder.of(WorkerExited)] == [-signal.SIGKILL]
    took = stuck_result.ended_at - stuck_result.started_at
    print(f"SIGTERM ignored: killed {took:.2f} s into the case (abort 0.2 + grace 0.3 + term grace 2.0)")
    assert 0.2 + 0.3 + GuardConfig().term_grace_s - 0.1 < took < 4.0, "SIGKILL after the term grace, before the step"
    assert counts == {"aborted": 1, "passed": 1}
    assert not crashed(recorder)


async def test_a_load_stopped_by_the_guard_ends_with_sigterm_and_exit_0() -> None:
    # 400 MiB on the fake device in 20 steps of 100 ms against a 64 MiB budget: the guard stops the load.
    loader = ModelSpec(id="loader", backend="fault", path="fault:1:100:400:20")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    scheduler, recorder = guarded([fault_case("loader/a", loader, 3), fault_case("calm/a", calm, 3)], budget_mib=64)
    counts = await asyncio.wait_for(scheduler.run(), 60)

    abort = next(e for e in recorder.of(GuardEvent) if e.action == "abort")
    exits = recorder.of(WorkerExited)
    assert [e.returncode for e in exits] == [0], [e.description for e in exits]
    print(f"guard abort mid-load: worker exited 0 after {(exits[0].t - abort.t) * 1000:.0f} ms")
    assert exits[0].t - abort.t < 1.0
    assert scheduler.latest()["loader/a"].error.startswith("memory guard stopped the load of loader:")
    assert counts == {"aborted": 1, "passed": 1}


def test_term_grace_is_a_guard_setting(tmp_path: Path) -> None:
    assert GuardConfig().term_grace_s == 2.0
    model = '[[models]]\nid = "m"\nbackend = "mlx-vlm"\npath = "tiny:idefics3"\n'
    suite = write_suite(tmp_path, f'prompts = ["x"]\n[guard]\nterm_grace_s = 0.5\n{model}')
    assert load_suite(suite).guard.term_grace_s == 0.5
    bad = write_suite(tmp_path, f'prompts = ["x"]\n[guard]\nterm_grace_s = 0\n{model}', name="bad.toml")
    with pytest.raises(SuiteError, match="term_grace_s"):
        load_suite(bad)
