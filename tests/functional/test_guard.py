"""The memory guard for real: a model that eats memory in the real worker is cleaned up, then aborted.

The fault-injection model (tests/fixtures/fault_backend.py) allocates resident memory per token, so
warn → cleanup → abort happens on this CPU machine exactly as it would on a Mac under Metal.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.functional.helpers import scheduler_for
from vlmtui.engine.events import (
    CaseFinished,
    GuardEvent,
    MemoryUpdate,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    WorkerExited,
)
from vlmtui.engine.plan import Case
from vlmtui.engine.session_log import SessionLog, load_log
from vlmtui.memory.budget import Budget
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire.spec import Expect, ModelSpec

MiB = 1024 * 1024
FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.fault_worker"]


def fault_case(case_id: str, model: ModelSpec, steps: int) -> Case:
    return Case(case_id, model, "eat", None, 0, steps, 0.0, Expect())


def guarded_scheduler(cases: list[Case], budget_mib: int, sample_ms: int = 50, on_abort: str = "next-case"):
    guard = GuardConfig(budget=f"{budget_mib}MiB", warn=50, cleanup=60, abort=80, sample_ms=sample_ms,
                        on_abort=on_abort, grace_s=1.0, term_grace_s=0.5, log_every_ms=50)
    env = {"PYTHONPATH": str(ROOT)}
    import os

    return scheduler_for(cases, guard=guard, budget=Budget(budget_mib * MiB, f"explicit {budget_mib}MiB"),
                         worker_argv=FAULT_WORKER, worker_env={**os.environ, **env})


async def test_guard_cleans_up_then_aborts_before_the_budget_and_the_next_case_passes(tmp_path: Path) -> None:
    eater = ModelSpec(id="eater", backend="fault", path="fault:4:25")
    cases = [fault_case("eater/big", eater, 400), fault_case("eater/small", eater, 3)]
    budget_mib = 400
    scheduler, recorder = guarded_scheduler(cases, budget_mib)
    log = SessionLog(tmp_path / "log.jsonl", memory_every_s=0.05)
    scheduler.subscribe(log)
    counts = await scheduler.run()
    log.close()

    big = scheduler.latest()["eater/big"]
    assert big.status == "aborted", big
    assert big.error.startswith("memory guard:") and "abort" in big.error
    assert "guard_reading" in big.metrics
    assert scheduler.latest()["eater/small"].status == "passed"
    assert counts == {"aborted": 1, "passed": 1}

    actions = [e.action for e in recorder.of(GuardEvent)]
    assert "warn" in actions and "cleanup" in actions and "abort" in actions
    assert actions.index("warn") < actions.index("cleanup") < actions.index("abort")
    freed = [e.freed_bytes for e in recorder.of(GuardEvent) if e.action == "cleaned"]
    assert freed and max(freed) > 0, "cleanup freed the cache"

    # Never past the budget: the highest RSS the parent saw stays under it.
    seen = [u.worker_rss for u in recorder.of(MemoryUpdate) if u.worker_rss]
    assert max(seen) < budget_mib * MiB

    # Reaction time: from the sample that crossed the abort line to the end of the case.
    abort_event = next(e for e in recorder.of(GuardEvent) if e.action == "abort")
    reaction = big.ended_at - abort_event.t
    print(f"guard reaction {reaction * 1000:.0f} ms; peak RSS seen {max(seen) / MiB:.0f} MiB of {budget_mib} MiB")
    assert 0 <= reaction < 0.05 + 0.5, f"guard reaction {reaction:.3f} s"

    data = load_log(tmp_path / "log.jsonl")
    assert {g["action"] for g in data.guard} >= {"warn", "cleanup", "abort"}
    assert len(data.memory) > 5


async def test_skip_model_after_a_guard_abort() -> None:
    eater = ModelSpec(id="eater", backend="fault", path="fault:8:20")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    cases = [fault_case("eater/a", eater, 400), fault_case("eater/b", eater, 400), fault_case("calm/a", calm, 3)]
    scheduler, recorder = guarded_scheduler(cases, 300, on_abort="skip-model")
    await scheduler.run()
    latest = scheduler.latest()
    assert latest["eater/a"].status == "aborted"
    assert latest["eater/b"].status == "skipped" and "skip-model" in latest["eater/b"].error
    assert latest["calm/a"].status == "passed"
    assert not [e for e in recorder.of(CaseFinished) if e.result.status == "crashed"]


async def test_stop_after_a_guard_abort() -> None:
    eater = ModelSpec(id="eater", backend="fault", path="fault:8:20")
    cases = [fault_case("eater/a", eater, 400), fault_case("eater/b", eater, 2)]
    scheduler, _ = guarded_scheduler(cases, 300, on_abort="stop")
    counts = await scheduler.run()
    assert scheduler.latest()["eater/a"].status == "aborted"
    assert "eater/b" not in scheduler.latest()
    assert counts == {"aborted": 1, "pending": 1}


async def test_a_worker_that_does_not_stop_in_time_is_killed_and_the_case_is_aborted() -> None:
    # Each step holds 200 MiB and then sleeps 3 s: the guard's abort cannot be honoured within grace_s, and
    # the SIGTERM that follows is ignored (as by a worker stuck in a native call), so SIGKILL ends it.
    stuck = ModelSpec(id="stuck", backend="fault", path="fault:200:3000")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    cases = [Case("stuck/a", stuck, "ignore-sigterm", None, 0, 5, 0.0, Expect()), fault_case("calm/a", calm, 3)]
    scheduler, _recorder = guarded_scheduler(cases, 250)
    counts = await scheduler.run()
    stuck_result = scheduler.latest()["stuck/a"]
    assert stuck_result.status == "aborted", stuck_result
    assert "memory guard" in stuck_result.error and "worker killed after 1 s" in stuck_result.error
    assert stuck_result.ended_at - stuck_result.started_at < 3.0, "killed before the step could finish"
    assert counts == {"aborted": 1, "passed": 1}


async def test_guard_stops_a_load_that_fills_device_memory_rss_does_not_show() -> None:
    # The load puts 400 MiB on a fake device in 20 steps of 100 ms, as weights going to a GPU do: the
    # worker's RSS stays ~20 MiB, so only the framework's view, sampled during the load, can stop it.
    loader = ModelSpec(id="loader", backend="fault", path="fault:1:100:400:20")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    cases = [fault_case("loader/a", loader, 3), fault_case("loader/b", loader, 3), fault_case("calm/a", calm, 3)]
    budget_mib = 64
    scheduler, recorder = guarded_scheduler(cases, budget_mib)
    counts = await scheduler.run()

    events = recorder.events
    loaded = [e for e in events if isinstance(e, ModelLoaded) and e.model == "loader"]
    assert not loaded, f"the guard let the load finish ({loaded[0].load_s:.1f} s) and acted only after it"
    loading = next(i for i, e in enumerate(events) if isinstance(e, ModelLoading) and e.model == "loader")
    failed = next(i for i, e in enumerate(events) if isinstance(e, ModelLoadFailed) and e.model == "loader")
    during_load = events[loading:failed]

    # The worker's samples carried the fake device during the load, and the guard watched that.
    device_updates = [u for u in during_load if isinstance(u, MemoryUpdate) and u.framework is not None]
    assert device_updates, "no framework sample reached the parent during the load"
    assert {u.framework["framework"] for u in device_updates} == {"fault-device"}
    assert {u.guarded_source for u in device_updates} == {"fault-device"}
    abort = next(e for e in during_load if isinstance(e, GuardEvent) and e.action == "abort")
    assert abort.case_id is None and abort.reading["guarded_source"] == "fault-device"
    assert abort.reading["guarded_bytes"] >= 0.8 * budget_mib * MiB
    # RSS alone would never have crossed the abort line: the old, RSS-only view saw nothing wrong.
    rss_seen = [u.worker_rss for u in during_load if isinstance(u, MemoryUpdate) and u.worker_rss]
    assert rss_seen and max(rss_seen) < 0.8 * budget_mib * MiB
    # Stopped early in the climb, not after the load.
    peak = max(u.guarded_bytes for u in device_updates)
    print(f"load stopped at {peak / MiB:.0f} MiB of 400 MiB on the fake device; RSS {max(rss_seen) / MiB:.0f} MiB")
    assert peak < 200 * MiB

    # The guard killed the worker mid-load: the model's cases are aborted (not crashed), the session goes on.
    assert any(isinstance(e, WorkerExited) for e in during_load)
    latest = scheduler.latest()
    for case_id in ("loader/a", "loader/b"):
        assert latest[case_id].status == "aborted", latest[case_id]
        assert latest[case_id].error.startswith("memory guard stopped the load of loader:"), latest[case_id].error
    # A fresh worker loads the next model, judged by its own samples, not by the killed worker's last one.
    assert latest["calm/a"].status == "passed", latest["calm/a"].error
    assert not [e for e in recorder.of(CaseFinished) if e.result.status == "crashed"]
    assert counts == {"aborted": 2, "passed": 1}


async def test_an_allocator_refusal_aborts_the_case_in_plain_words_and_the_worker_carries_on() -> None:
    # The fake device is capped at 64 MiB, as torch's allocator is capped on CUDA: 16 MiB of weights plus
    # 8 MiB a token passes 3 tokens and runs out at the 7th. The budget is large, so the guard stays out.
    capped = ModelSpec(id="capped", backend="fault", path="fault:8:2:16:1:64")
    cases = [fault_case("capped/big", capped, 50), fault_case("capped/small", capped, 3)]
    scheduler, recorder = guarded_scheduler(cases, 4096)
    counts = await scheduler.run()

    big = scheduler.latest()["capped/big"]
    assert big.status == "aborted", big
    # The backend's own words, once: not "out of memory: OutOfMemoryError: out of memory generating …".
    assert big.error == "out of memory generating on fault-device: Tried to allocate 8 MiB; 64 MiB allowed"
    assert scheduler.latest()["capped/small"].status == "passed"
    # The same worker ran both: a refused allocation is caught, not a crash.
    assert not recorder.of(WorkerExited)
    assert len(recorder.of(ModelLoaded)) == 1
    assert counts == {"aborted": 1, "passed": 1}


async def test_preflight_skips_a_model_that_cannot_fit_unless_forced(tmp_path: Path) -> None:
    model_dir = tmp_path / "big-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "llava_next"}')
    with open(model_dir / "model.safetensors", "wb") as weights:
        weights.truncate(2 * 1024 * MiB)  # sparse: 2 GiB of weights on paper, nothing on disk
    big = ModelSpec(id="big", backend="transformers", path=str(model_dir))
    forced = ModelSpec(id="forced", backend="transformers", path=str(model_dir), force=True)
    cases = [fault_case("big/a", big, 2), fault_case("forced/a", forced, 2)]
    guard = GuardConfig(budget="1GiB")
    scheduler, _ = scheduler_for(cases, guard=guard, budget=Budget(1024 * MiB, "explicit 1GiB"))
    await scheduler.run()
    skipped = scheduler.latest()["big/a"]
    assert skipped.status == "skipped"
    assert "needs ~2.6 GiB" in skipped.error and "force = true" in skipped.error
    forced_result = scheduler.latest()["forced/a"]
    assert forced_result.status == "failed", "force loads anyway (and this file is no real model)"
