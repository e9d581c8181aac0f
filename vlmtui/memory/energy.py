"""Energy of one case from telemetry samples: NVML's energy counter where the GPU has one, else integrated power.

Feed an ``EnergyMeter`` the samples taken while a case runs, including one at its start and one at its end
(``TelemetrySampler.sample()`` is cheap enough to call there), then ask for ``reading(gen_tokens)``.

- ``nvml-counter``: the difference of ``nvmlDeviceGetTotalEnergyConsumption`` between the first and last
  sample (millijoule resolution; exact however coarse the sampling).
- ``nvml-power`` / ``macmon``: the trapezoid integral of power over the sample times. NVML's power on
  H100/H200 is a one-second average and macmon's is the average over its own interval, so the integral
  lags the load by up to that much; on a case of a few seconds that is the counter's advantage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vlmtui.memory.telemetry_sample import TelemetrySample

ENERGY_SOURCES = ("nvml-counter", "nvml-power", "macmon")


@dataclass(frozen=True)
class EnergyReading:
    """Energy used over a case, its cost per generated token, and where the figure came from."""

    energy_j: float | None
    j_per_token: float | None
    source: str | None
    """``nvml-counter``, ``nvml-power``, ``macmon``, or ``None`` when nothing measured power."""
    duration_s: float
    """From the first sample to the last one the figure covers."""
    samples: int
    mean_power_w: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the log's ``case_end``."""
        return asdict(self)


def _power_source(sample: TelemetrySample) -> str | None:
    """``nvml-power`` or ``macmon`` by where the sample's power came from."""
    source = sample.source("power_w") or sample.source("cpu_power_w") or ""
    if source.startswith("nvml"):
        return "nvml-power"
    if source.startswith("macmon"):
        return "macmon"
    return None


class EnergyMeter:
    """Collects one case's samples; ``reading`` gives its energy by the best source they allow."""

    def __init__(self) -> None:
        self._samples: list[TelemetrySample] = []

    def add(self, sample: TelemetrySample) -> None:
        """One more sample, in time order (an older one than the last is ignored)."""
        if self._samples and sample.t < self._samples[-1].t:
            return
        self._samples.append(sample)

    def __len__(self) -> int:
        return len(self._samples)

    def reading(self, gen_tokens: int | None = None) -> EnergyReading:
        """The case's energy: the counter's difference when two samples have it, else integrated power."""
        counted = [s for s in self._samples if s.energy_j_counter is not None]
        if len(counted) >= 2:
            first, last = counted[0], counted[-1]
            assert first.energy_j_counter is not None and last.energy_j_counter is not None
            joules = last.energy_j_counter - first.energy_j_counter
            if joules >= 0:  # a driver reload resets the counter: then fall back to power
                return _reading(joules, gen_tokens, "nvml-counter", last.t - first.t, len(counted))
        energy = 0.0
        covered = 0.0
        used: set[int] = set()
        source: str | None = None
        for i in range(1, len(self._samples)):
            a, b = self._samples[i - 1], self._samples[i]
            pa, pb = a.energy_power_w, b.energy_power_w
            if pa is None or pb is None:
                continue  # a gap in the readings is left out, not bridged
            dt = b.t - a.t
            energy += (pa + pb) / 2 * dt
            covered += dt
            used |= {i - 1, i}
            source = source or _power_source(b)
        if not used:
            span = self._samples[-1].t - self._samples[0].t if self._samples else 0.0
            return EnergyReading(None, None, None, span, len(self._samples))
        return _reading(energy, gen_tokens, source, covered, len(used))


def _reading(joules: float, gen_tokens: int | None, source: str | None, duration: float,
             samples: int) -> EnergyReading:
    return EnergyReading(
        energy_j=joules,
        j_per_token=joules / gen_tokens if gen_tokens else None,
        source=source,
        duration_s=duration,
        samples=samples,
        mean_power_w=joules / duration if duration > 0 else None,
    )
