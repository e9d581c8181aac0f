"""The parent's telemetry sampler: GPU load, power, energy counter, temperatures, throttling and pressure.

Parent side: no model framework, no Textual; ``pynvml`` is imported only when NVML is opened. Which
sources run depends on the machine, and each figure a source cannot give is a reason, not an error:

- NVIDIA (Linux, Windows): NVML (nvml.py), read by a thread every interval; the energy counter, which
  costs milliseconds a read, every ``COUNTER_EVERY_S`` and at each ``mark()``.
- macOS: ``macmon pipe`` as a child read by a thread (macmon.py), or "n/a (install macmon)"; a second
  thread runs ``sysctl kern.memorystatus_vm_pressure_level`` every second and ``pmset -g therm`` every
  five (thermal.py, system.py).
- elsewhere: every figure "n/a".

``sample()`` does no I/O: it merges the threads' latest readings (microseconds, safe on an event loop).
``mark()`` reads NVML there and then, energy counter included, for a case's start and end::

    sampler = TelemetrySampler(interval_ms=250).start()
    meter = EnergyMeter(); meter.add(sampler.mark())          # case start (off the event loop: ~3 ms)
    meter.add(sampler.sample())                               # each guard tick while the case runs
    meter.add(sampler.mark()); meter.reading(gen_tokens)      # case end → energy_j, j_per_token, source
    sampler.stop()

What it costs is measured by bench/telemetry_cost.py and written up in docs/telemetry.md.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType, TracebackType

from vlmtui.memory.energy import EnergyMeter, EnergyReading
from vlmtui.memory.macmon import MACMON_FIGURES, MacmonReader, find_macmon
from vlmtui.memory.nvml import NvmlProbe
from vlmtui.memory.system import PRESSURE_NAMES, SysctlRunner, probe_pressure
from vlmtui.memory.telemetry_sample import (
    FIGURES,
    NA_MACMON,
    NA_MACOS_ONLY,
    NA_NO_COUNTER,
    NA_NOT_MEASURED,
    NotAvailable,
    TelemetrySample,
    combine,
    unavailable,
)
from vlmtui.memory.thermal import probe_thermal

__all__ = [
    "FIGURES",
    "PRESSURE_NAMES",
    "EnergyMeter",
    "EnergyReading",
    "NotAvailable",
    "TelemetrySample",
    "TelemetrySampler",
    "describe_telemetry",
]

PRESSURE_EVERY_S = 1.0
"""``sysctl -n`` costs a fork+exec (≈ 2 ms measured on the dev box): once a second is 0.2 % of a core."""
THERMAL_EVERY_S = 5.0
"""``pmset -g therm`` changes on a scale of seconds to minutes; every 5 s keeps its fork+exec negligible."""
COUNTER_EVERY_S = 2.0
"""NVML's energy counter cost 3.1 ms a read (p99 15.5 ms) on an H200 VM: every 2 s is 0.15 % of a core,
where every 250 ms sample would be 1.2 %; ``mark()`` reads it at the moments that need it exactly."""
_GPU_FIGURES = ("gpu_util_pct", "power_w", "energy_j_counter", "temperatures_c", "throttled")


def _pressure_part(run: SysctlRunner | None, platform: str) -> TelemetrySample:
    """macOS memory pressure as a partial sample (or why not)."""
    reading = probe_pressure(run, platform=platform)
    if reading is None:
        return unavailable("n/a (sysctl kern.memorystatus_vm_pressure_level unreadable)", ("pressure_level",))
    return TelemetrySample(t=reading.t, pressure_level=reading.level, sources=(("pressure_level", "sysctl"),))


class TelemetrySampler:
    """Starts the sources this machine has; ``sample()`` merges their latest readings into one sample."""

    def __init__(
        self,
        *,
        interval_ms: int = 250,
        platform: str = sys.platform,
        nvml: ModuleType | None = None,
        macmon: str | NotAvailable | None = None,
        macmon_argv: Sequence[str] | None = None,
        run: SysctlRunner | None = None,
        pressure_every_s: float = PRESSURE_EVERY_S,
        thermal_every_s: float = THERMAL_EVERY_S,
    ) -> None:
        """``nvml``, ``macmon`` (a path, or why not), ``macmon_argv`` and ``run`` replace the real sources in tests."""
        self.interval_ms = interval_ms
        self.platform = platform
        self._nvml_module = nvml
        self._macmon_choice = macmon
        self._macmon_argv = list(macmon_argv) if macmon_argv is not None else None
        self._run = run
        self._pressure_every_s = pressure_every_s
        self._thermal_every_s = thermal_every_s
        self._nvml: NvmlProbe | None = None
        self._macmon: MacmonReader | None = None
        self._missing: list[TelemetrySample] = []
        self._lock = threading.Lock()
        self._gpu: TelemetrySample | None = None
        self._pressure: TelemetrySample | None = None
        self._thermal: TelemetrySample | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> TelemetrySampler:
        """Open NVML, or start macmon and the macOS poller; what is missing becomes its reasons (once per sampler)."""
        if self._stop.is_set() or self._threads or self._missing:
            raise RuntimeError("a TelemetrySampler starts once; make a new one")
        if self.platform == "darwin":
            self._start_macos()
        else:
            probe = NvmlProbe.open(self._nvml_module)
            if isinstance(probe, NvmlProbe):
                self._nvml = probe
                self._gpu = probe.read()  # the first sample is whole
                self._spawn(self._poll_nvml, "telemetry-nvml")
            else:
                self._missing.append(unavailable(probe.reason, _GPU_FIGURES))
            self._missing.append(unavailable(NA_MACOS_ONLY, ("cpu_speed_limit_pct", "pressure_level")))
            self._missing.append(unavailable(NA_NOT_MEASURED, ("cpu_power_w",)))
            self._missing.append(unavailable("n/a (Apple silicon only)", ("ane_power_w",)))
        return self

    def _start_macos(self) -> None:
        found = self._macmon_choice if self._macmon_choice is not None else find_macmon()
        if self._macmon_argv is not None:
            self._macmon = MacmonReader(self._macmon_argv).start()
        elif isinstance(found, str):
            self._macmon = MacmonReader.for_path(found, self.interval_ms).start()
        else:
            self._missing.append(unavailable(found.reason, MACMON_FIGURES))
        self._missing.append(unavailable(NA_NO_COUNTER, ("energy_j_counter",)))
        # The first readings are taken now, so the first sample is whole; the thread keeps them fresh.
        self._pressure = _pressure_part(self._run, self.platform)
        self._thermal = probe_thermal(self._run, platform=self.platform)
        self._spawn(self._poll_macos, "telemetry-macos")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, daemon=True, name=name)
        thread.start()
        self._threads.append(thread)

    def _poll_nvml(self) -> None:
        """NVML thread: the cheap figures every interval, the energy counter every ``COUNTER_EVERY_S``."""
        probe = self._nvml
        next_counter = time.monotonic() + COUNTER_EVERY_S
        while probe is not None and not self._stop.wait(self.interval_ms / 1000):
            counter = time.monotonic() >= next_counter
            part = probe.read(counter=counter)
            if counter:
                next_counter = time.monotonic() + COUNTER_EVERY_S
            with self._lock:
                self._gpu = part

    def _poll_macos(self) -> None:
        """Poller thread: pressure every ``pressure_every_s``, pmset every ``thermal_every_s``."""
        next_thermal = time.monotonic() + self._thermal_every_s
        while not self._stop.wait(self._pressure_every_s):
            pressure = _pressure_part(self._run, self.platform)
            thermal = None
            if time.monotonic() >= next_thermal:
                thermal = probe_thermal(self._run, platform=self.platform)
                next_thermal = time.monotonic() + self._thermal_every_s
            with self._lock:
                self._pressure = pressure
                if thermal is not None:
                    self._thermal = thermal

    def sample(self) -> TelemetrySample:
        """The sources' latest readings merged into one sample, stamped with the GPU reading's time; no I/O."""
        with self._lock:
            gpu = self._gpu
        return self._merge(gpu)

    def mark(self) -> TelemetrySample:
        """A sample with NVML read now, energy counter included (a case's start and end); else ``sample()``."""
        probe = self._nvml
        if probe is None:
            return self.sample()
        gpu = probe.read(counter=True)
        with self._lock:
            self._gpu = gpu
        return self._merge(gpu)

    def _merge(self, gpu: TelemetrySample | None) -> TelemetrySample:
        now = time.time()
        parts: list[TelemetrySample] = [gpu] if gpu is not None else []
        macmon = self._macmon
        if macmon is not None:
            parts.append(macmon.latest(now))
        with self._lock:
            parts += [p for p in (self._thermal, self._pressure) if p is not None]
        parts += self._missing
        # The power and the counter belong to the moment they were read: an energy integral needs that.
        stamp = parts[0].t if parts and parts[0].sources else now
        return combine(parts, t=stamp)

    def stop(self) -> None:
        """Stop macmon and the poller, shut NVML down; safe to call twice."""
        self._stop.set()
        if self._macmon is not None:
            self._macmon.stop()
            self._macmon = None
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    def __enter__(self) -> TelemetrySampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def describe_telemetry(*, platform: str = sys.platform, nvml: ModuleType | None = None,
                       macmon: str | NotAvailable | None = None) -> str:
    """One line for ``vlmtui doctor``: which telemetry source this machine has, or why none."""
    if platform == "darwin":
        found = macmon if macmon is not None else find_macmon()
        head = f"macmon ({found})" if isinstance(found, str) else NA_MACMON
        return f"{head}; thermal from pmset, pressure from sysctl"
    probe = NvmlProbe.open(nvml)
    if isinstance(probe, NotAvailable):
        return probe.reason
    try:
        return probe.describe()
    finally:
        probe.close()
