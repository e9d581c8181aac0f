"""Energy per case in the real engine: the real fault worker, NVML replayed from the H200 recording, or none.

The worker is real (tests/fixtures/fault_worker.py); only NVML, which cannot exist here, is the recorded fake
(tests/fixtures/fake_pynvml.py), advanced one recorded sample per NVML power read so the energy counter climbs
as it did under the bf16 load.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.fixtures import fake_pynvml
from tests.functional.helpers import scheduler_for
from vlmtui.engine.events import CaseFinished, MemoryUpdate
from vlmtui.engine.plan import Case
from vlmtui.engine.session_log import SessionLog, load_log
from vlmtui.memory.budget import Budget
from vlmtui.memory.telemetry import TelemetrySampler
from vlmtui.reports.records import SessionRecords
from vlmtui.suite.loader import GuardConfig
from vlmtui.wire.spec import Expect, ModelSpec

MiB = 1024 * 1024
FAULT_WORKER = [sys.executable, "-m", "tests.fixtures.fault_worker"]
LOAD = fake_pynvml.phase_indices("load")


class AdvancingNvml(fake_pynvml.FakePynvml):
    """The recorded H200, one sample further on at each power read (the sampler's tick and each mark)."""

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        self.index = min(self.index + 1, LOAD[-1])
        return super().nvmlDeviceGetPowerUsage(handle)


async def _run(telemetry: TelemetrySampler | None,
               tmp_path: Path) -> tuple[list[CaseFinished], list[MemoryUpdate], SessionRecords]:
    """Two cases of the fault model on the real worker, logged; the sampler given, else the engine's own."""
    calm = ModelSpec(id="calm", backend="fault", path="fault:0.01:20")
    cases = [Case(f"calm/{i}", calm, "eat", None, 0, 8, 0.0, Expect()) for i in range(2)]
    guard = GuardConfig(budget="4GiB", sample_ms=50, log_every_ms=50, grace_s=1.0, term_grace_s=0.5)
    scheduler, recorder = scheduler_for(cases, guard=guard, budget=Budget(4096 * MiB, "explicit 4GiB"),
                                        worker_argv=FAULT_WORKER,
                                        worker_env={**os.environ, "PYTHONPATH": str(ROOT)}, telemetry=telemetry)
    log = SessionLog(tmp_path / "log.jsonl", memory_every_s=0.05)
    scheduler.subscribe(log)
    await scheduler.run()
    log.close()
    return recorder.of(CaseFinished), recorder.of(MemoryUpdate), load_log(tmp_path / "log.jsonl")


async def test_with_nvml_each_case_end_has_its_energy_from_the_counter(tmp_path: Path) -> None:
    fake = AdvancingNvml(index=LOAD[0])
    finished, updates, records = await _run(TelemetrySampler(interval_ms=50, platform="linux", nvml=fake), tmp_path)
    assert [f.result.status for f in finished] == ["passed", "passed"]
    for f in finished:
        metrics = f.result.metrics
        assert metrics["energy_source"] == "nvml-counter"
        assert metrics["energy_j"] > 0
        assert metrics["j_per_token"] == metrics["energy_j"] / metrics["gen_tokens"]
        assert metrics["throttled"] is False  # at the power cap (sw_power_cap) is not throttling
        assert set(metrics["throttle_reasons"]) <= {"gpu_idle", "sw_power_cap"}
    assert any(u.telemetry is not None and u.telemetry.power_w for u in updates)
    assert fake.inits == 0, "the sampler stopped with the run and shut NVML down"
    logged = [r.metrics for r in records.results]
    assert all(m.energy_source == "nvml-counter" and (m.energy_j or 0) > 0 for m in logged)
    assert any((s.line.get("telemetry") or {}).get("power_w") for s in records.memory)


async def test_without_nvml_energy_is_null_and_nothing_fails(tmp_path: Path) -> None:
    broken = fake_pynvml.replaying(init_error=fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    finished, updates, records = await _run(TelemetrySampler(interval_ms=50, platform="linux", nvml=broken),
                                            tmp_path)
    assert [f.result.status for f in finished] == ["passed", "passed"]
    for f in finished:
        metrics = f.result.metrics
        assert metrics["energy_j"] is None and metrics["j_per_token"] is None and metrics["energy_source"] is None
        assert metrics["throttled"] is False
    telemetry = next(u.telemetry for u in updates if u.telemetry is not None)
    assert telemetry.why_unavailable("power_w") == "n/a (NVML: Driver Not Loaded)"
    assert all(r.metrics.energy_j is None for r in records.results)


async def test_the_default_sampler_on_this_machine_gives_na_not_an_error(tmp_path: Path) -> None:
    finished, updates, _ = await _run(None, tmp_path)
    assert [f.result.status for f in finished] == ["passed", "passed"]
    assert all(f.result.metrics["energy_source"] is None for f in finished)
    telemetry = next(u.telemetry for u in updates if u.telemetry is not None)
    assert (telemetry.why_unavailable("gpu_util_pct") or "").startswith("n/a")
