"""Sampling that slows when nothing runs: the guard loop's idle rate and the session log's idle memory lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

from vlmtui.engine.events import CaseFinished, CaseResult, CaseStarted, Event, MemoryUpdate
from vlmtui.engine.guard_loop import GuardLoop, idle_sample_ms_from_env
from vlmtui.engine.session_log import SessionLog
from vlmtui.engine.worker_session import WorkerSession
from vlmtui.memory.budget import Budget
from vlmtui.suite.loader import GuardConfig

MiB = 1024 * 1024


async def samples_in(loop: GuardLoop, seconds: float, updates: list[MemoryUpdate]) -> int:
    before = len(updates)
    await asyncio.sleep(seconds)
    return len(updates) - before


async def test_the_guard_loop_samples_at_the_idle_rate_until_a_case_runs() -> None:
    updates: list[MemoryUpdate] = []

    def emit(event: Event) -> None:
        if isinstance(event, MemoryUpdate):
            updates.append(event)

    config = GuardConfig(sample_ms=50)
    session = WorkerSession(emit, config, None, None, lambda message: None)
    loop = GuardLoop(config, Budget(512 * MiB, "explicit 512MiB"), session, emit, idle_sample_ms=500)
    task = asyncio.create_task(loop.watch())
    try:
        await asyncio.sleep(0.3)  # the telemetry sampler is up and the first sample out
        assert loop.idle
        idle = await samples_in(loop, 1.6, updates)
        assert 2 <= idle <= 5, idle  # every 500 ms, not every 50 ms (32 in 1.6 s)
        session.loading = object()  # type: ignore[assignment]  # a model starts loading: full rate again
        assert not loop.idle
        busy = await samples_in(loop, 1.0, updates)
        assert busy >= 8, busy  # ~20 in 1 s at 50 ms; a busy CI box delays some
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_the_idle_rate_comes_from_the_environment() -> None:
    assert idle_sample_ms_from_env({}) == 1000
    assert idle_sample_ms_from_env({"VLMTUI_IDLE_SAMPLE_MS": "2500"}) == 2500
    assert idle_sample_ms_from_env({"VLMTUI_IDLE_SAMPLE_MS": "soon"}) == 1000


def memory(t: float) -> MemoryUpdate:
    return MemoryUpdate(t=t, system={}, worker_rss=None, framework=None, guarded_bytes=None, guarded_source="rss",
                        budget_bytes=512 * MiB, level="ok", pressure=None)


def test_the_session_log_writes_a_memory_line_every_10_s_between_cases(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "log.jsonl")
    t0 = time.time()
    for i in range(80):  # 20 s with nothing running, a sample every 250 ms
        log(memory(t0 + i * 0.25))
    log(CaseStarted("m/c", 1, "m", t=t0 + 20))
    for i in range(1, 21):  # 5 s of a case
        log(memory(t0 + 20 + i * 0.25))
    log(CaseFinished(CaseResult(case_id="m/c", attempt=1, model="m", backend="fault", image=None, prompt="p",
                                kind="text", status="passed", started_at=t0 + 20, ended_at=t0 + 25)))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    times = [line["t"] - t0 for line in lines if line["event"] == "memory"]
    idle = [t for t in times if t < 20]
    busy = [t for t in times if t >= 20]
    assert idle == [0.0, 10.0], idle
    assert len(busy) == 5, busy  # one a second while the case runs
