"""Decides, from one memory reading at a time, whether to warn, free caches, abort or stand down.

Pure logic: no I/O, no clock (time comes in with the reading), no framework. The scheduler feeds it a
``MemoryReading`` per sample and acts on the ``GuardDecision`` it returns on a change of level.

Rules:

- Worker memory (the guarded quantity) against the thresholds, in percent of the budget: going up is
  immediate at a threshold; going down needs the reading to fall below threshold − ``hysteresis_pct``
  (percentage points), so a reading that hovers around a threshold decides once, not on every sample.
- macOS memory pressure: critical (4) ⇒ abort; warning (2) ⇒ at least warn. The kernel already
  smooths this signal, so it gets no hysteresis of its own.
- System-wide available memory below a floor (``min_system_available``, default 5 % of RAM when the
  reading carries the RAM total) ⇒ abort: another process may be the one eating the machine.
- While in cleanup, a cleanup decision repeats every ``cleanup_cooldown_s`` (the cleanup did not help).
- Abort latches: nothing more is decided until ``reset()``, called for the next case or model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal

from vlmtui import vocab
from vlmtui.memory.budget import Budget, Thresholds
from vlmtui.units import format_bytes

if TYPE_CHECKING:
    from vlmtui.suite.loader import GuardConfig

GuardAction = Literal["none", "warn", "cleanup", "abort", "recover"]
"""What the scheduler should do (``vocab.GuardAction`` names them): ``recover`` is any step down; ``none`` is
never returned by ``Guard``."""

PRESSURE_WARNING = 2
PRESSURE_CRITICAL = 4

_SOURCE_LABELS = {
    "mlx": "MLX active+cache",
    "torch-mps": "MPS driver-allocated",
    "torch-cuda": "CUDA reserved",
    "rss": "RSS",
}


class GuardLevel(IntEnum):
    """How close the worker is to the edge; ordered, so ``max`` and ``<`` mean what they say."""

    OK = 0
    WARN = 1
    CLEANUP = 2
    ABORT = 3

    @property
    def label(self) -> vocab.GuardLevel:
        """``ok``, ``warn``, ``cleanup`` or ``abort``, for the log and the UI."""
        return vocab.GuardLevel(self.name.lower())


_UP_ACTIONS: dict[GuardLevel, GuardAction] = {
    GuardLevel.WARN: "warn",
    GuardLevel.CLEANUP: "cleanup",
    GuardLevel.ABORT: "abort",
}


@dataclass(frozen=True)
class MemoryReading:
    """One sample as the guard sees it: the worker's guarded bytes plus the system's state."""

    t: float
    guarded_bytes: int
    guarded_source: str
    """``mlx``, ``torch-mps``, ``torch-cuda`` or ``rss``."""
    system_available: int | None = None
    pressure_level: int | None = None
    """macOS ``kern.memorystatus_vm_pressure_level`` (1, 2, 4); ``None`` elsewhere."""
    system_total: int | None = None
    """RAM total, for the default floor on ``system_available`` (5 % of it)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the log."""
        return asdict(self)


@dataclass(frozen=True)
class GuardDecision:
    """A change of level (or a repeated cleanup), with one human line saying why."""

    t: float
    level: GuardLevel
    previous: GuardLevel
    action: GuardAction
    reason: str
    """E.g. ``worker memory 7.6 GiB (MLX active+cache) ≥ abort 95% of 8.0 GiB budget``."""
    reading: MemoryReading

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the protocol and the log; levels as their labels."""
        return {
            "t": self.t,
            "level": self.level.label,
            "previous": self.previous.label,
            "action": self.action,
            "reason": self.reason,
            "reading": self.reading.to_dict(),
        }


class Guard:
    """The guard's state machine for one worker; feed it readings with ``observe``."""

    def __init__(
        self,
        budget: Budget | int,
        warn_pct: float = 75.0,
        cleanup_pct: float = 85.0,
        abort_pct: float = 95.0,
        hysteresis_pct: float = 5.0,
        cleanup_cooldown_s: float = 2.0,
        min_system_available: int | None = None,
        system_floor_pct: float = 5.0,
    ) -> None:
        budget_bytes = budget.bytes if isinstance(budget, Budget) else int(budget)
        if hysteresis_pct < 0 or cleanup_cooldown_s < 0 or system_floor_pct < 0:
            raise ValueError("hysteresis, cooldown and floor must not be negative")
        self.thresholds = Thresholds(budget_bytes, warn_pct, cleanup_pct, abort_pct)
        self.hysteresis_pct = hysteresis_pct
        self.cleanup_cooldown_s = cleanup_cooldown_s
        self.min_system_available = min_system_available
        self.system_floor_pct = system_floor_pct
        self._level = GuardLevel.OK
        self._byte_level = GuardLevel.OK
        self._pressure_level = GuardLevel.OK
        self._last_cleanup_t: float | None = None

    @classmethod
    def from_config(cls, budget: Budget | int, config: GuardConfig, **kwargs: Any) -> Guard:
        """A guard with a suite's ``[guard]`` thresholds."""
        return cls(budget, config.warn, config.cleanup, config.abort, **kwargs)

    @property
    def level(self) -> GuardLevel:
        """The level after the last reading."""
        return self._level

    def reset(self) -> None:
        """Back to ok, abort latch released: for the next case or model."""
        self._level = GuardLevel.OK
        self._byte_level = GuardLevel.OK
        self._pressure_level = GuardLevel.OK
        self._last_cleanup_t = None

    # ------------------------------------------------------------------ the decision

    def observe(self, reading: MemoryReading) -> GuardDecision | None:
        """The decision this reading calls for, or ``None`` when the level stays (and no cleanup is due)."""
        if self._level is GuardLevel.ABORT:
            return None
        previous = self._level
        prev_bytes, prev_pressure = self._byte_level, self._pressure_level
        self._byte_level = self._level_for_bytes(reading.guarded_bytes)
        self._pressure_level = self._level_for_pressure(reading.pressure_level)
        floor = self._floor(reading)
        below_floor = (
            floor is not None and reading.system_available is not None and reading.system_available < floor
        )
        floor_level = GuardLevel.ABORT if below_floor else GuardLevel.OK
        level = max(self._byte_level, self._pressure_level, floor_level)
        self._level = level

        if level > previous:
            if level is GuardLevel.CLEANUP:
                self._last_cleanup_t = reading.t
            if level == self._byte_level:
                reason = self._bytes_reason(reading, level)
            elif level == self._pressure_level:
                reason = self._pressure_reason(reading)
            else:
                reason = self._floor_reason(reading, floor)
            return GuardDecision(reading.t, level, previous, _UP_ACTIONS[level], reason, reading)

        if level < previous:
            parts = []
            if self._byte_level < prev_bytes:
                parts.append(self._bytes_fell_reason(reading, prev_bytes))
            if self._pressure_level < prev_pressure:
                parts.append(f"macOS memory pressure back to {_pressure_name(reading.pressure_level)}")
            reason = "; ".join(parts) or f"memory back to {level.label}"
            return GuardDecision(reading.t, level, previous, "recover", reason, reading)

        if (
            level is GuardLevel.CLEANUP
            and self._last_cleanup_t is not None
            and reading.t - self._last_cleanup_t >= self.cleanup_cooldown_s
        ):
            self._last_cleanup_t = reading.t
            # Only worker memory leads to cleanup (pressure maps to warn or abort).
            reason = self._bytes_reason(reading, level, still=True)
            return GuardDecision(reading.t, level, previous, "cleanup", reason, reading)
        return None

    def _threshold_pct(self, level: GuardLevel) -> float:
        th = self.thresholds
        if level is GuardLevel.ABORT:
            return th.abort_pct
        return th.cleanup_pct if level is GuardLevel.CLEANUP else th.warn_pct

    def _level_for_bytes(self, guarded: int) -> GuardLevel:
        """The highest level whose threshold is reached, or that is held and not yet left by hysteresis."""
        at = self.thresholds.bytes_at
        for level in (GuardLevel.ABORT, GuardLevel.CLEANUP, GuardLevel.WARN):
            threshold = self._threshold_pct(level)
            held = self._byte_level >= level and guarded >= at(threshold - self.hysteresis_pct)
            if guarded >= at(threshold) or held:
                return level
        return GuardLevel.OK

    @staticmethod
    def _level_for_pressure(pressure: int | None) -> GuardLevel:
        if pressure is not None and pressure >= PRESSURE_CRITICAL:
            return GuardLevel.ABORT
        if pressure is not None and pressure >= PRESSURE_WARNING:
            return GuardLevel.WARN
        return GuardLevel.OK

    def _floor(self, reading: MemoryReading) -> int | None:
        if self.min_system_available is not None:
            return self.min_system_available
        if reading.system_total:
            return int(reading.system_total * self.system_floor_pct / 100.0)
        return None

    # ------------------------------------------------------------------ reasons

    def _worker(self, reading: MemoryReading) -> str:
        source = _SOURCE_LABELS.get(reading.guarded_source, reading.guarded_source)
        return f"worker memory {format_bytes(reading.guarded_bytes)} ({source})"

    def _bytes_reason(self, reading: MemoryReading, level: GuardLevel, still: bool = False) -> str:
        budget = format_bytes(self.thresholds.budget_bytes)
        word = "still ≥" if still else "≥"
        threshold = self._threshold_pct(level)
        return f"{self._worker(reading)} {word} {level.label} {threshold:g}% of {budget} budget"

    def _bytes_fell_reason(self, reading: MemoryReading, left: GuardLevel) -> str:
        budget = format_bytes(self.thresholds.budget_bytes)
        threshold = self._threshold_pct(left)
        return (
            f"{self._worker(reading)} < {threshold - self.hysteresis_pct:g}% of {budget} budget "
            f"({left.label} {threshold:g}% − {self.hysteresis_pct:g}% hysteresis)"
        )

    @staticmethod
    def _pressure_reason(reading: MemoryReading) -> str:
        return f"macOS memory pressure {_pressure_name(reading.pressure_level)}"

    def _floor_reason(self, reading: MemoryReading, floor: int | None) -> str:
        text = f"system available {format_bytes(reading.system_available)} < floor {format_bytes(floor)}"
        if self.min_system_available is None and reading.system_total:
            text += f" ({self.system_floor_pct:g}% of {format_bytes(reading.system_total)} RAM)"
        return text


def _pressure_name(level: int | None) -> str:
    names = {1: "normal", 2: "warning", 4: "critical"}
    return "unknown" if level is None else names.get(level, f"level {level}")
