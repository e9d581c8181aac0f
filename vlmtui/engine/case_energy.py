"""One case's energy and throttling from the parent's telemetry: marks at its start and end, samples between.

``mark()`` reads NVML's energy counter (3.1 ms a call, p99 16 ms on an H200 VM: docs/telemetry.md), so the
marks run in a thread, off the event loop; the guard loop's ticks add the cheap ``sample()`` in between.
The figures go into the case's ``metrics`` (docs/log-format.md): ``energy_j``, ``j_per_token``,
``energy_source``, ``throttled`` and ``throttle_reasons``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vlmtui.memory.energy import EnergyMeter
from vlmtui.memory.telemetry import TelemetrySampler
from vlmtui.memory.telemetry_sample import TelemetrySample


class CaseEnergy:
    """The samples of the running case: ``begin`` (a mark), ``add`` at each tick, ``end`` (a mark) → metrics."""

    def __init__(self, sampler: TelemetrySampler | None) -> None:
        self._sampler = sampler
        self._meter: EnergyMeter | None = None
        self._throttled = False
        self._reasons: list[str] = []

    @property
    def running(self) -> bool:
        """Whether a case is being measured."""
        return self._meter is not None

    async def begin(self) -> None:
        """A case starts: its first mark (NVML's counter read in a thread), then a fresh meter."""
        first = await asyncio.to_thread(self._sampler.mark) if self._sampler is not None else None
        self._meter, self._throttled, self._reasons = EnergyMeter(), False, []
        if first is not None:
            self.add(first)

    def add(self, sample: TelemetrySample) -> None:
        """One tick's sample while the case runs (ignored between cases)."""
        if self._meter is None:
            return
        self._meter.add(sample)
        self._throttled = self._throttled or bool(sample.throttled)
        self._reasons += [r for r in sample.throttle_reasons if r not in self._reasons]

    async def end(self, gen_tokens: int | None) -> dict[str, Any]:
        """The case ended: the last mark and its figures for ``metrics`` (``energy_j`` null when unmeasured)."""
        if self._meter is None:
            return {}
        if self._sampler is not None:
            self.add(await asyncio.to_thread(self._sampler.mark))
        meter, self._meter = self._meter, None
        if meter is None:
            return {}
        reading = meter.reading(gen_tokens)
        return {"energy_j": reading.energy_j, "j_per_token": reading.j_per_token,
                "energy_source": reading.source, "throttled": self._throttled,
                "throttle_reasons": list(self._reasons)}
