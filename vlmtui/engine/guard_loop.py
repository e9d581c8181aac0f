"""The guard loop: memory sampled in the parent every ``sample_ms``, fed to the guard, its decisions acted on.

The parent samples system memory and the worker's RSS itself, so the gauge and the guard keep working
while a worker is stuck in a long kernel; the worker's framework sample is used while it is fresh. The
budget lives here too: an "auto" budget is refined once a worker reports its device.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from vlmtui.engine.case_energy import CaseEnergy
from vlmtui.engine.events import BudgetChanged, CaseResult, Event, GuardEvent, MemoryUpdate, Notice
from vlmtui.engine.guard_info import guard_info
from vlmtui.engine.worker_session import WorkerSession
from vlmtui.memory.budget import Budget, resolve_budget
from vlmtui.memory.guard import Guard, GuardDecision, MemoryReading
from vlmtui.memory.preflight import check_fit, model_footprint
from vlmtui.memory.system import probe_pressure, probe_process_rss, probe_system
from vlmtui.memory.telemetry import TelemetrySampler
from vlmtui.suite.loader import GuardConfig
from vlmtui.vocab import GuardAction, GuardLevel
from vlmtui.wire import protocol as p
from vlmtui.wire.sampling import IDLE_SAMPLE_MS, idle_sample_ms_from_env
from vlmtui.wire.spec import ModelSpec

__all__ = ["IDLE_SAMPLE_MS", "GuardLoop", "idle_sample_ms_from_env"]


class GuardLoop:
    """The budget, the guard over it, and the loop that samples memory and acts on the guard's decisions."""

    def __init__(self, config: GuardConfig, budget: Budget, session: WorkerSession,
                 emit: Callable[[Event], None], telemetry: TelemetrySampler | None = None,
                 idle_sample_ms: int | None = None) -> None:
        self.config = config
        self.idle_sample_ms = max(idle_sample_ms if idle_sample_ms is not None else idle_sample_ms_from_env(),
                                  config.sample_ms)
        """The sampling interval while no case runs and no model loads (the queue done or paused)."""
        self.budget = budget
        self.guard = Guard.from_config(budget, config)
        self.last_update: MemoryUpdate | None = None
        """The latest sample, kept for a crashed case's record."""
        self._session = session
        self._emit = emit
        self._telemetry = telemetry
        """GPU load, power, energy and thermal state (docs/telemetry.md); None: the loop makes its own."""
        self._telemetry_ready = asyncio.Event()
        self.energy = CaseEnergy(None)
        """The running case's energy: marks at its start and end, this loop's samples between."""

    def reset(self) -> None:
        """Forget the guard's level (a new case or model starts)."""
        self.guard.reset()

    def info(self) -> dict[str, Any]:
        """The budget and the guard's settings, as ``SessionStarted.info`` carries them."""
        return guard_info(self.config, self.budget)

    @property
    def abort_bytes(self) -> int:
        """The abort threshold in bytes: the hard limit a worker's allocator gets at load."""
        return int(self.budget.bytes * self.config.abort / 100)

    def refine_budget(self, devices: dict[str, Any]) -> None:
        """An "auto" budget sized from the device the worker found (Metal working set, CUDA total)."""
        if self.config.budget != "auto" or not devices:
            return
        budget = resolve_budget("auto", devices, probe_system().total)
        if budget != self.budget:
            self.budget = budget
            self.guard = Guard.from_config(budget, self.config)
            self._emit(BudgetChanged(budget.bytes, budget.source))
            self._emit(Notice("info", f"memory budget: {budget}"))

    def preflight(self, model: ModelSpec) -> str | None:
        """Why the model cannot fit under the budget (its cases are then skipped), or None."""
        if model.force:
            return None
        estimate = model_footprint(model)  # None where the backend declares no preflight, or for tiny models
        if estimate is None:
            return None
        verdict = check_fit(estimate, self.budget.bytes, 0)
        return None if verdict.fits else f"skipped by preflight: {verdict.reason} (force = true loads anyway)"

    def on_cleaned(self, message: p.Cleaned) -> None:
        """The worker's report of a cleanup: a guard event when the guard asked for it, else a notice."""
        what = f"cleanup ({message.reason}) freed {message.freed_bytes} bytes"
        if message.by_guard:
            level = self.guard.level.label
            self._emit(GuardEvent(t=time.time(), level=level, previous=level, action=GuardAction.CLEANED,
                                  reason=what, case_id=self._session.running_case, reading={},
                                  freed_bytes=message.freed_bytes))
        else:  # the user's, or the worker's own after an out-of-memory error: not the guard's doing
            self._emit(Notice("info", what))

    # ------------------------------------------------------------------ telemetry and energy

    async def _start_telemetry(self) -> None:
        """Start the sampler with the loop (NVML's init in a thread); one that cannot start leaves none."""
        sampler = self._telemetry or TelemetrySampler(interval_ms=self.config.sample_ms)
        try:
            self._telemetry = await asyncio.to_thread(sampler.start)
        except Exception as exc:  # "n/a" is a value: no figure is worth a failed run
            self._telemetry = None
            self._emit(Notice("warning", f"GPU telemetry off: {type(exc).__name__}: {exc}"))
        self.energy = CaseEnergy(self._telemetry)
        self._telemetry_ready.set()

    async def begin_case(self) -> None:
        """A case starts: its energy's first mark, once the sampler is up."""
        await self._telemetry_ready.wait()
        await self.energy.begin()

    async def end_case(self, result: CaseResult) -> CaseResult:
        """The case's result with ``energy_j``, ``j_per_token``, ``energy_source`` and ``throttled`` in its metrics."""
        tokens = result.metrics.get("gen_tokens")
        figures = await self.energy.end(tokens if isinstance(tokens, int) else None)
        return dataclasses.replace(result, metrics={**result.metrics, **figures}) if figures else result

    # ------------------------------------------------------------------ the loop

    def _reading(self) -> tuple[MemoryReading, MemoryUpdate]:
        system = probe_system()
        pressure = probe_pressure()
        pid = self._session.pid
        rss = probe_process_rss(pid) if pid else None
        fresh_s = max(3 * self.config.sample_ms / 1000, 1.0)
        if self._session.running is None and self._session.loading is None:
            # The worker samples every idle_sample_ms while it neither loads nor runs (worker/main.py): its
            # last sample stands that long, not a fall back to RSS between two of them.
            fresh_s = max(fresh_s, 2 * self.idle_sample_ms / 1000)
        framework = self._session.framework_sample(fresh_s)
        if framework is not None:
            guarded, source = int(framework["guarded_bytes"]), str(framework["framework"])
        else:
            guarded, source = (rss or 0), "rss"
        level = pressure.level if pressure is not None else None
        reading = MemoryReading(t=system.t, guarded_bytes=guarded, guarded_source=source,
                                system_available=system.available, pressure_level=level,
                                system_total=system.total)
        update = MemoryUpdate(
            t=system.t, system=_asdict(system), worker_rss=rss, framework=framework,
            guarded_bytes=guarded if pid else None, guarded_source=source, budget_bytes=self.budget.bytes,
            level=self.guard.level.label, pressure=level,
            telemetry=self._telemetry.sample() if self._telemetry is not None else None,
        )
        return reading, update

    @property
    def idle(self) -> bool:
        """No case runs and no model loads: nothing the worker does can raise its memory."""
        session = self._session
        return session.running is None and session.loading is None and self.guard.level.label == GuardLevel.OK

    async def watch(self) -> None:
        """Start the telemetry sampler; sample, emit and act every ``sample_ms`` until cancelled (every
        ``idle_sample_ms`` while idle); stop it.

        While idle the loop still wakes every ``sample_ms`` but samples only once ``idle_sample_ms`` has
        passed, so a case that starts is watched at the full rate from its first interval. A dashboard
        left open on a finished queue then gets one sample a second (it drew four before; issue 17)."""
        interval = self.config.sample_ms / 1000
        await self._start_telemetry()
        last = -float("inf")
        try:
            while True:
                if self.idle and time.monotonic() - last < self.idle_sample_ms / 1000 - interval / 2:
                    await asyncio.sleep(interval)
                    continue
                last = time.monotonic()
                reading, update = await asyncio.to_thread(self._reading)
                decision = self.guard.observe(reading) if self._session.pid else None
                if decision is not None:
                    update = dataclasses.replace(update, level=decision.level.label)
                if update.telemetry is not None:
                    self.energy.add(update.telemetry)
                self.last_update = update
                self._emit(update)
                if decision is not None:
                    self._act(decision, reading)
                await asyncio.sleep(interval)
        finally:
            if self._telemetry is not None:
                self._telemetry.stop()

    def _act(self, decision: GuardDecision, reading: MemoryReading) -> None:
        session = self._session
        reading_dict, action = _asdict(reading), GuardAction(decision.action)
        self._emit(GuardEvent(t=decision.t, level=decision.level.label, previous=decision.previous.label,
                              action=action, reason=decision.reason,
                              case_id=session.running_case, reading=reading_dict))
        if action == GuardAction.CLEANUP:
            session.cleanup(decision.reason, by_guard=True)
        elif action == GuardAction.ABORT:
            running = session.running
            if running is not None and running.abort_reason is None:
                running.guard_reading = reading_dict
                session.abort(f"memory guard: {decision.reason}", unload=True)
            # A load cannot stop between tokens; the worker holds nothing worth keeping yet.
            elif not session.cut_load(decision.reason, by_guard=True):
                session.unload_idle(f"memory guard: {decision.reason}")


def _asdict(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in obj.__dict__.items()} if hasattr(obj, "__dict__") else dict(obj)
