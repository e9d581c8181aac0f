"""One immutable telemetry reading (GPU load, power, energy, temperatures, throttling, pressure) and how parts merge.

Each probe (NVML, macmon, pmset, sysctl) returns a partial ``TelemetrySample`` holding the figures it knows,
the source of each, and a reason for each figure it cannot give; ``combine`` merges the parts into the
sample the sampler hands out. "Not available" is a value here (``None`` plus a reason), never an
exception, and no display threshold lives here: the TUI decides what is hot or busy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FIGURES = (
    "gpu_util_pct",
    "power_w",
    "cpu_power_w",
    "ane_power_w",
    "energy_j_counter",
    "temperatures_c",
    "throttled",
    "cpu_speed_limit_pct",
    "pressure_level",
)
"""Every figure a sample can carry, in display order; ``sources`` and ``unavailable`` are keyed by these."""

NA_MACMON = "n/a (install macmon)"
NA_MACOS_ONLY = "n/a (macOS only)"
NA_NO_COUNTER = "n/a (no energy counter on this machine)"
NA_NOT_MEASURED = "n/a (not measured on this platform)"


@dataclass(frozen=True)
class NotAvailable:
    """A source that cannot be read here, with the one-line reason shown in its place."""

    reason: str


@dataclass(frozen=True)
class TelemetrySample:
    """What the machine's accelerator and SoC were doing at ``t`` (seconds since the epoch)."""

    t: float = field(default_factory=time.time)
    gpu_util_pct: float | None = None
    """Share of the last interval the GPU was busy (NVML's kernel time, macmon's active residency), 0–100."""
    power_w: float | None = None
    """GPU power: NVML board power (H100/H200 report a 1 s average), macmon's GPU rail."""
    cpu_power_w: float | None = None
    """CPU cluster power (macmon); NVML has none."""
    ane_power_w: float | None = None
    """Apple Neural Engine power (macmon)."""
    energy_j_counter: float | None = None
    """NVML's total-energy counter in joules since the driver loaded (Volta and later); differences matter."""
    temperatures_c: tuple[tuple[str, float], ...] = ()
    """``(sensor, °C)`` pairs: ``gpu`` (or ``gpu0``, ``gpu1`` …) and, on a Mac, ``cpu``."""
    throttled: bool | None = None
    """True when clocks are held down by heat or a hardware slowdown; ``None`` when nothing says either way."""
    throttle_reasons: tuple[str, ...] = ()
    """Names of the active reasons (NVML clock-event reasons, macOS pmset warnings), ``gpu_idle`` included."""
    cpu_speed_limit_pct: int | None = None
    """macOS ``pmset -g therm`` CPU speed limit: 100 unless the OS is holding the CPU back."""
    pressure_level: int | None = None
    """macOS ``kern.memorystatus_vm_pressure_level``: 1 normal, 2 warning, 4 critical."""
    gpu_count: int = 0
    """How many GPUs the NVML figures cover (power and energy are summed, utilisation is the busiest one)."""
    sources: tuple[tuple[str, str], ...] = ()
    """``(figure, source)`` for each figure present, e.g. ``("power_w", "nvml")``."""
    unavailable: tuple[tuple[str, str], ...] = ()
    """``(figure, reason)`` for each figure absent, e.g. ``("power_w", "n/a (install macmon)")``."""

    def source(self, figure: str) -> str | None:
        """Where ``figure`` came from, ``None`` when it is absent."""
        return dict(self.sources).get(figure)

    def why_unavailable(self, figure: str) -> str | None:
        """Why ``figure`` is absent, ``None`` when it is present or nobody said."""
        return dict(self.unavailable).get(figure)

    def temperature(self, sensor: str) -> float | None:
        """One sensor's temperature in °C, ``None`` when it was not read."""
        return dict(self.temperatures_c).get(sensor)

    @property
    def energy_power_w(self) -> float | None:
        """The power an energy integral uses: GPU + CPU + ANE where measured (macmon's "Power"), else ``None``."""
        parts = [p for p in (self.power_w, self.cpu_power_w, self.ane_power_w) if p is not None]
        return sum(parts) if parts else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the protocol and the log (pairs become objects)."""
        return {
            "t": self.t,
            "gpu_util_pct": self.gpu_util_pct,
            "power_w": self.power_w,
            "cpu_power_w": self.cpu_power_w,
            "ane_power_w": self.ane_power_w,
            "energy_j_counter": self.energy_j_counter,
            "temperatures_c": dict(self.temperatures_c),
            "throttled": self.throttled,
            "throttle_reasons": list(self.throttle_reasons),
            "cpu_speed_limit_pct": self.cpu_speed_limit_pct,
            "pressure_level": self.pressure_level,
            "gpu_count": self.gpu_count,
            "sources": dict(self.sources),
            "unavailable": dict(self.unavailable),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TelemetrySample:
        """The inverse of ``to_dict`` (unknown keys ignored)."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("temperatures_c", "sources", "unavailable"):
            if key in values:
                values[key] = tuple((str(k), v) for k, v in dict(values[key]).items())
        if "throttle_reasons" in values:
            values["throttle_reasons"] = tuple(values["throttle_reasons"])
        return cls(**values)


def unavailable(reason: str, figures: Iterable[str], *, t: float | None = None) -> TelemetrySample:
    """A part that gives no figure, only ``reason`` for each of ``figures``."""
    return TelemetrySample(t=time.time() if t is None else t, unavailable=tuple((f, reason) for f in figures))


_SCALARS = ("gpu_util_pct", "power_w", "cpu_power_w", "ane_power_w", "energy_j_counter",
            "cpu_speed_limit_pct", "pressure_level")


def combine(parts: Iterable[TelemetrySample], *, t: float | None = None) -> TelemetrySample:
    """Merge partial samples: for each figure the first part that has it wins, with its source.

    Temperatures and throttle reasons are gathered from every part; ``throttled`` is True if any part
    says so, False if some part says not and none says so, ``None`` otherwise. A figure no part gives
    keeps the first reason offered for it.
    """
    parts = list(parts)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    reasons: dict[str, str] = {}
    temperatures: dict[str, float] = {}
    throttle_reasons: list[str] = []
    throttled: bool | None = None
    gpu_count = 0
    for part in parts:
        part_sources = dict(part.sources)
        for name in _SCALARS:
            value = getattr(part, name)
            if value is not None and name not in values:
                values[name] = value
                if name in part_sources:
                    sources[name] = part_sources[name]
        for sensor, celsius in part.temperatures_c:
            temperatures.setdefault(sensor, celsius)
        if part.temperatures_c and "temperatures_c" in part_sources:
            sources.setdefault("temperatures_c", part_sources["temperatures_c"])
        if part.throttled is not None:
            throttled = part.throttled or bool(throttled)
            if "throttled" in part_sources:
                sources["throttled"] = ",".join(filter(None, (sources.get("throttled"), part_sources["throttled"])))
        throttle_reasons += [r for r in part.throttle_reasons if r not in throttle_reasons]
        gpu_count = max(gpu_count, part.gpu_count)
        for figure, reason in part.unavailable:
            reasons.setdefault(figure, reason)
    present = set(values) | ({"temperatures_c"} if temperatures else set()) | (
        {"throttled"} if throttled is not None else set())
    return TelemetrySample(
        t=(parts[0].t if parts else time.time()) if t is None else t,
        temperatures_c=tuple(temperatures.items()),
        throttled=throttled,
        throttle_reasons=tuple(throttle_reasons),
        gpu_count=gpu_count,
        sources=tuple((f, sources[f]) for f in FIGURES if f in sources),
        unavailable=tuple((f, reasons[f]) for f in FIGURES if f in reasons and f not in present),
        **values,
    )
