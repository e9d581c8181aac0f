"""NVIDIA GPU load, power, energy counter, temperature and clock throttling through NVML, read in the parent.

``pynvml`` (the nvidia-ml-py distribution) is imported only when a probe is opened, never at module import,
so the parent pays nothing for it on a Mac. NVML is initialised once and the device handles are kept; a
figure the GPU does not support (``NVML_ERROR_NOT_SUPPORTED``, e.g. the energy counter before Volta) is
asked once and then reported as "not available" without asking again.

Which GPUs: those ``CUDA_VISIBLE_DEVICES`` names (indices or ``GPU-`` UUIDs, read until the first entry
that is neither, as CUDA does), else all of them. NVML numbers GPUs in PCI bus order, CUDA fastest first
unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; on hosts of one GPU model the two agree. Power and energy are
summed over the GPUs, utilisation is the busiest GPU's, temperatures are per GPU.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from vlmtui.memory.telemetry_sample import NotAvailable, TelemetrySample

THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x0001, "gpu_idle"),
    (0x0002, "applications_clocks"),
    (0x0004, "sw_power_cap"),
    (0x0008, "hw_slowdown"),
    (0x0010, "sync_boost"),
    (0x0020, "sw_thermal"),
    (0x0040, "hw_thermal"),
    (0x0080, "hw_power_brake"),
    (0x0100, "display_clocks"),
)
"""NVML's ``nvmlClocksEventReason*`` bits (nvml.h; called ``nvmlClocksThrottleReason*`` before driver 535)."""

SLOWDOWN_MASK = 0x0008 | 0x0020 | 0x0040 | 0x0080
"""The reasons that make a case's tok/s incomparable: heat and hardware slowdowns. ``sw_power_cap`` is left
out: a datacenter GPU under full load sits at its power cap as its steady state, run after run."""

NOT_SUPPORTED = 3
"""``NVML_ERROR_NOT_SUPPORTED``."""
LIBRARY_NOT_FOUND = 12
"""``NVML_ERROR_LIBRARY_NOT_FOUND``: no libnvidia-ml, i.e. no NVIDIA driver."""
_DRIVER_PROC = "/proc/driver/nvidia/version"


def throttle_names(bits: int) -> tuple[str, ...]:
    """The names of the reasons set in ``bits`` (unknown bits as ``0x…``)."""
    names = [name for bit, name in THROTTLE_REASONS if bits & bit]
    known = sum(bit for bit, _ in THROTTLE_REASONS)
    if bits & ~known:
        names.append(hex(bits & ~known))
    return tuple(names)


def visible_devices(env: str | None) -> list[int | str] | None:
    """``CUDA_VISIBLE_DEVICES`` as NVML selectors (index or UUID); ``None`` when unset (all GPUs)."""
    if env is None:
        return None
    chosen: list[int | str] = []
    for entry in (e.strip() for e in env.split(",")):
        if entry.isdigit():
            chosen.append(int(entry))
        elif entry.startswith("GPU-"):
            chosen.append(entry)
        else:
            break  # CUDA ignores everything from the first invalid entry on ("-1" hides every GPU)
    return chosen


def _load_pynvml() -> ModuleType | NotAvailable:
    """``pynvml``, or why not."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return NotAvailable("n/a (install nvidia-ml-py)" if os.path.exists(_DRIVER_PROC)
                            else "n/a (no NVIDIA GPU)")
    except Exception as exc:  # a broken install raising anything at import time
        return NotAvailable(f"n/a (pynvml: {type(exc).__name__})")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _not_supported(exc: BaseException, nvml: ModuleType) -> bool:
    return getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", NOT_SUPPORTED)


class NvmlProbe:
    """NVML opened once, its device handles kept: ``read()`` costs a few NVML calls per GPU."""

    def __init__(self, nvml: ModuleType, handles: list[Any], names: list[str]) -> None:
        self.nvml = nvml
        self.handles = handles
        self.names = names
        self._unsupported: dict[str, str] = {}
        reasons = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                   or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        self._throttle_fn: Callable[[Any], int] | None = reasons
        if reasons is None:
            self._unsupported["throttled"] = "n/a (this pynvml has no clock-event reasons)"
        if getattr(nvml, "nvmlDeviceGetTotalEnergyConsumption", None) is None:
            self._unsupported["energy_j_counter"] = "n/a (this pynvml has no energy counter)"

    @classmethod
    def open(cls, nvml: ModuleType | None = None, *, cuda_visible: str | None = None,
             use_env: bool = True) -> NvmlProbe | NotAvailable:
        """Initialise NVML and take the visible GPUs' handles; ``NotAvailable`` without pynvml or a GPU."""
        module = _load_pynvml() if nvml is None else nvml
        if isinstance(module, NotAvailable):
            return module
        if use_env and cuda_visible is None:
            cuda_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            module.nvmlInit()
        except Exception as exc:
            # nvidia-ml-py installed (the `all` extra pulls it in) on a machine without NVIDIA's driver.
            if getattr(exc, "value", None) == LIBRARY_NOT_FOUND and not os.path.exists(_DRIVER_PROC):
                return NotAvailable("n/a (no NVIDIA GPU)")
            return NotAvailable(f"n/a (NVML: {_text(exc) or type(exc).__name__})")
        try:
            selectors = visible_devices(cuda_visible)
            if selectors is None:
                selectors = list(range(int(module.nvmlDeviceGetCount())))
            handles = [module.nvmlDeviceGetHandleByUUID(s) if isinstance(s, str)
                       else module.nvmlDeviceGetHandleByIndex(s) for s in selectors]
            names = [_text(module.nvmlDeviceGetName(h)) for h in handles]
        except Exception as exc:
            _shutdown(module)
            return NotAvailable(f"n/a (NVML: {_text(exc) or type(exc).__name__})")
        if not handles:
            _shutdown(module)
            return NotAvailable("n/a (no NVIDIA GPU visible)")
        return cls(module, handles, names)

    def close(self) -> None:
        """Shut NVML down (it counts initialisations, so another user's stays open)."""
        _shutdown(self.nvml)

    def _ask(self, figure: str, errors: dict[str, str], fn: Callable[..., Any] | None, *args: Any) -> Any:
        """One NVML call; ``None`` and a reason on failure, and never again once it is not supported."""
        if figure in self._unsupported or fn is None:
            return None
        try:
            return fn(*args)
        except Exception as exc:
            if _not_supported(exc, self.nvml):
                self._unsupported[figure] = "n/a (not supported by this GPU)"
            else:
                errors.setdefault(figure, f"n/a (NVML: {_text(exc) or type(exc).__name__})")
            return None

    def read(self, *, counter: bool = True) -> TelemetrySample:
        """The GPUs now: busiest utilisation, summed power and energy, temperatures, throttle reasons.

        ``counter=False`` leaves the energy counter out: on an H200 VM it cost 3.1 ms a call (p99 15.5 ms)
        against 1–2 µs for each other figure (bench/telemetry_cost.py record), so the sampler reads it
        only every few seconds and at a case's boundaries.
        """
        nvml = self.nvml
        errors: dict[str, str] = {}
        utils: list[float] = []
        powers: list[float] = []
        energies: list[float] = []
        temperatures: list[tuple[str, float]] = []
        bits = 0
        any_bits = False
        gpu_sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        for i, handle in enumerate(self.handles):
            rates = self._ask("gpu_util_pct", errors, nvml.nvmlDeviceGetUtilizationRates, handle)
            if rates is not None:
                utils.append(float(rates.gpu))
            mw = self._ask("power_w", errors, nvml.nvmlDeviceGetPowerUsage, handle)
            if mw is not None:
                powers.append(mw / 1000.0)
            mj = self._ask("energy_j_counter", errors,
                           getattr(nvml, "nvmlDeviceGetTotalEnergyConsumption", None), handle) if counter else None
            if mj is not None:
                energies.append(mj / 1000.0)
            celsius = self._ask("temperatures_c", errors, nvml.nvmlDeviceGetTemperature, handle, gpu_sensor)
            if celsius is not None:
                temperatures.append(("gpu" if len(self.handles) == 1 else f"gpu{i}", float(celsius)))
            reasons = self._ask("throttled", errors, self._throttle_fn, handle)
            if reasons is not None:
                bits |= int(reasons)
                any_bits = True
        n = len(self.handles)
        # A sum over some GPUs only would read as a drop in power: all of them or none.
        power = sum(powers) if len(powers) == n else None
        energy = sum(energies) if len(energies) == n else None
        figures: dict[str, Any] = {
            "gpu_util_pct": max(utils) if utils else None,
            "power_w": power,
            "energy_j_counter": energy,
            "throttled": bool(bits & SLOWDOWN_MASK) if any_bits else None,
        }
        present = [f for f, v in figures.items() if v is not None] + (["temperatures_c"] if temperatures else [])
        missing = {**errors, **self._unsupported}
        if not counter:
            missing.setdefault("energy_j_counter", "not read in this sample (read every few seconds and by mark())")
        unavailable = [(f, missing.get(f, "n/a (NVML gave no value)")) for f in
                       ("gpu_util_pct", "power_w", "energy_j_counter", "temperatures_c", "throttled")
                       if f not in present]
        return TelemetrySample(
            t=time.time(),
            temperatures_c=tuple(temperatures),
            throttle_reasons=throttle_names(bits) if any_bits else (),
            gpu_count=n,
            sources=tuple((f, "nvml") for f in present),
            unavailable=tuple(unavailable),
            **figures,
        )

    def describe(self) -> str:
        """One line for ``vlmtui doctor``: the GPUs and which figures they give."""
        sample = self.read()
        given = [label for figure, label in (("gpu_util_pct", "utilisation"), ("power_w", "power"),
                                             ("energy_j_counter", "energy counter"),
                                             ("throttled", "throttle reasons"))
                 if sample.source(figure)]
        names = ", ".join(sorted(set(self.names)))
        return f"NVML: {len(self.handles)} × {names} ({', '.join(given) or 'no figures'})"


def _shutdown(nvml: ModuleType) -> None:
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()
