"""The memory guard for real: a model that eats memory in the real worker is cleaned up, then aborted.

The fault-injection model (tests/fixtures/fault_backend.py) allocates resident memory per token, so
warn → cleanup → abort happens on this CPU machine exactly as it would on a Mac under Metal.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.functional.helpers import scheduler_for
from vlmtui.events import CaseFinished, GuardEvent, MemoryUpdate
from vlmtui.memory.budget import Budget
from vlmtui.plan import Case
from vlmtui.session.log import SessionLog, load_log
from vlmtui.suite import Expect, GuardConfig, ModelSpec

MiB = 1024 * 1024
FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.fault_worker"]


def fault_case(case_id: str, model: ModelSpec, steps: int) -> Case:
    return Case(case_id, model, "eat", None, 0, steps, 0.0, Expect())


def guarded_scheduler(cases: list[Case], budget_mib: int, sample_ms: int = 50, on_abort: str = "next-case"):
    guard = GuardConfig(budget=f"{budget_mib}MiB", warn=50, cleanup=60, abort=80, sample_ms=sample_ms,
                        on_abort=on_abort, grace_s=1.0, log_every_ms=50)
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
    # Each step holds 200 MiB and then sleeps 3 s: the guard's abort cannot be honoured within grace_s.
    stuck = ModelSpec(id="stuck", backend="fault", path="fault:200:3000")
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:1")
    cases = [fault_case("stuck/a", stuck, 5), fault_case("calm/a", calm, 3)]
    scheduler, _recorder = guarded_scheduler(cases, 250)
    counts = await scheduler.run()
    stuck_result = scheduler.latest()["stuck/a"]
    assert stuck_result.status == "aborted", stuck_result
    assert "memory guard" in stuck_result.error and "worker killed after 1 s" in stuck_result.error
    assert stuck_result.ended_at - stuck_result.started_at < 3.0, "killed before the step could finish"
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
