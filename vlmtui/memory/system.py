"""System memory as the parent sees it: RAM and swap (psutil), a process's RSS, and macOS sysctl readings.

Parent side: this module imports psutil and the standard library only, never a model framework. Every
probe returns an immutable sample, or ``None`` where its source does not exist here ("not available" is
a value, not an exception).

Cost per call, measured on the Linux x86_64 dev box (2 cores, psutil 7.2): ``probe_system`` ≈ 150 µs,
``probe_process_rss`` ≈ 60 µs, ``probe_pressure`` ≈ 0.2 µs off macOS. On macOS ``probe_pressure`` runs
``sysctl -n`` as a child process: the same fork+exec of ``sysctl -n`` costs ≈ 2 ms here, so at 4 Hz it
takes < 1 % of one core, and it blocks the caller for that long (call it off the event loop).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

SysctlRunner = Callable[[Sequence[str]], str]
"""Runs an argv list and returns its standard output; raises (OSError, SubprocessError) on failure."""

SYSCTL_TIMEOUT_S = 0.5
"""sysctl answers in about a millisecond; a hung one must not stall the 4 Hz sampler for long."""

PRESSURE_NAMES = {1: "normal", 2: "warning", 4: "critical"}
"""``kern.memorystatus_vm_pressure_level`` values (XNU's NOTE_MEMORYSTATUS_PRESSURE_* bits)."""


@dataclass(frozen=True)
class SystemSample:
    """RAM and swap of the whole machine, in bytes, at time ``t`` (seconds since the epoch)."""

    total: int
    available: int
    """What can be given to processes without swapping (psutil's ``available``)."""
    used: int
    percent: float
    swap_total: int
    swap_used: int
    t: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the protocol and the log."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SystemSample:
        """The inverse of ``to_dict`` (unknown keys ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PressureSample:
    """macOS memory pressure: ``level`` 1 normal, 2 warning, 4 critical."""

    level: int
    name: str
    """``normal``, ``warning`` or ``critical``."""
    t: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the protocol and the log."""
        return asdict(self)


def probe_system() -> SystemSample:
    """RAM and swap now; psutil reads these on every platform vlmtui runs on, so never ``None``."""
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return SystemSample(
        total=int(vm.total),
        available=int(vm.available),
        used=int(vm.used),
        percent=float(vm.percent),
        swap_total=int(sw.total),
        swap_used=int(sw.used),
    )


def probe_process_rss(pid: int, *, include_children: bool = False) -> int | None:
    """Resident set size of ``pid`` in bytes (plus its live descendants' if asked); ``None`` once it is gone.

    On Apple Silicon, Metal buffers are not all counted in RSS; the worker's framework sample is the
    guarded quantity there, and RSS is the fallback for backends that have none (openai, CPU torch).
    """
    try:
        proc = psutil.Process(pid)
        rss = int(proc.memory_info().rss)
        children = proc.children(recursive=True) if include_children else []
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for child in children:
        try:
            rss += int(child.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return rss


def run_sysctl(argv: Sequence[str]) -> str:
    """The default runner: ``argv`` without a shell, a short timeout, stdout as text."""
    completed = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=SYSCTL_TIMEOUT_S, check=True
    )
    return completed.stdout


def read_sysctl_int(
    name: str, *, run: SysctlRunner | None = None, platform: str = sys.platform
) -> int | None:
    """``sysctl -n NAME`` as an integer on macOS; ``None`` elsewhere, on failure or on unexpected output."""
    if platform != "darwin":
        return None
    runner = run or run_sysctl
    try:
        out = runner(["sysctl", "-n", name])
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return int(out.strip())
    except ValueError:
        return None


def probe_pressure(
    run: SysctlRunner | None = None, *, platform: str = sys.platform
) -> PressureSample | None:
    """macOS memory pressure from ``kern.memorystatus_vm_pressure_level``; ``None`` off macOS or unreadable.

    Needs no privileges. An unknown level (not 1, 2 or 4) is treated as unreadable.
    """
    level = read_sysctl_int("kern.memorystatus_vm_pressure_level", run=run, platform=platform)
    if level is None or level not in PRESSURE_NAMES:
        return None
    return PressureSample(level=level, name=PRESSURE_NAMES[level])


def probe_wired_limit_mb(run: SysctlRunner | None = None, *, platform: str = sys.platform) -> int | None:
    """``iogpu.wired_limit_mb`` on macOS (0: the default limit, not raised); ``None`` elsewhere.

    Raising it (``sudo sysctl iogpu.wired_limit_mb=N``) also raises what Metal reports as the recommended
    working set, so the budget picks it up through the device info; this reading is for ``vlmtui doctor``.
    """
    return read_sysctl_int("iogpu.wired_limit_mb", run=run, platform=platform)
