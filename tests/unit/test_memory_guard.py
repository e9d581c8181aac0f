"""The guard's state machine: thresholds, hysteresis, cleanup repeats, macOS pressure, the system floor."""

from __future__ import annotations

import pytest

from vlmtui.memory.budget import Budget
from vlmtui.memory.guard import Guard, GuardDecision, GuardLevel, MemoryReading
from vlmtui.suite.loader import GuardConfig

GiB = 1024**3
BUDGET = 8 * GiB


def reading(pct: float, t: float = 0.0, **kw: object) -> MemoryReading:
    """A reading of ``pct`` percent of the 8 GiB budget, from MLX."""
    return MemoryReading(t=t, guarded_bytes=int(BUDGET * pct / 100), guarded_source="mlx", **kw)  # type: ignore[arg-type]


def feed(guard: Guard, pcts: list[float], dt: float = 0.25) -> list[GuardDecision]:
    """Feed a sequence sampled at 4 Hz; the decisions it produced."""
    out = []
    for i, pct in enumerate(pcts):
        decision = guard.observe(reading(pct, t=i * dt))
        if decision is not None:
            out.append(decision)
    return out


def test_levels_are_ordered() -> None:
    assert GuardLevel.OK < GuardLevel.WARN < GuardLevel.CLEANUP < GuardLevel.ABORT
    assert [lvl.label for lvl in GuardLevel] == ["ok", "warn", "cleanup", "abort"]


def test_below_warn_decides_nothing() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    assert feed(guard, [10, 40, 74.9]) == []
    assert guard.level is GuardLevel.OK


def test_reason_names_bytes_threshold_and_budget() -> None:
    guard = Guard(Budget(BUDGET, "metal recommended working set"), 75, 85, 95)
    decision = guard.observe(MemoryReading(t=1.0, guarded_bytes=int(7.6 * GiB), guarded_source="mlx"))
    assert decision is not None
    assert decision.level is GuardLevel.ABORT and decision.previous is GuardLevel.OK
    assert decision.action == "abort"
    assert decision.reason == "worker memory 7.6 GiB (MLX active+cache) ≥ abort 95% of 8.0 GiB budget"


def test_going_up_is_immediate_at_each_threshold() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    decisions = feed(guard, [75, 85, 95])
    assert [(d.previous, d.level, d.action) for d in decisions] == [
        (GuardLevel.OK, GuardLevel.WARN, "warn"),
        (GuardLevel.WARN, GuardLevel.CLEANUP, "cleanup"),
        (GuardLevel.CLEANUP, GuardLevel.ABORT, "abort"),
    ]


def test_oscillating_around_a_threshold_decides_once() -> None:
    guard = Guard(BUDGET, 75, 85, 95, hysteresis_pct=5.0)
    wobble = [74, 76, 73, 77, 71, 75.5, 72, 76] * 10  # ±4 points around warn, for 20 s
    decisions = feed(guard, wobble)
    assert len(decisions) == 1
    assert decisions[0].action == "warn"
    assert guard.level is GuardLevel.WARN


def test_without_hysteresis_the_same_wobble_flaps() -> None:
    guard = Guard(BUDGET, 75, 85, 95, hysteresis_pct=0.0)
    decisions = feed(guard, [74, 76] * 5)
    assert len(decisions) == 9  # every crossing after the first sample: what hysteresis prevents


def test_going_down_needs_threshold_minus_hysteresis() -> None:
    guard = Guard(BUDGET, 75, 85, 95, hysteresis_pct=5.0)
    decisions = feed(guard, [80, 72, 70.5, 70, 69.9])
    assert [d.action for d in decisions] == ["warn", "recover"]
    recover = decisions[1]
    assert recover.level is GuardLevel.OK and recover.previous is GuardLevel.WARN
    assert recover.reason == (
        "worker memory 5.6 GiB (MLX active+cache) < 70% of 8.0 GiB budget (warn 75% − 5% hysteresis)"
    )


def test_cleanup_steps_down_to_warn_then_ok() -> None:
    guard = Guard(BUDGET, 75, 85, 95, hysteresis_pct=5.0, cleanup_cooldown_s=100)
    decisions = feed(guard, [86, 82, 80, 79, 72, 69])
    assert [(d.previous.label, d.level.label, d.action) for d in decisions] == [
        ("ok", "cleanup", "cleanup"),
        ("cleanup", "warn", "recover"),
        ("warn", "ok", "recover"),
    ]
    assert "cleanup 85% − 5% hysteresis" in decisions[1].reason


def test_cleanup_repeats_after_the_cooldown_while_still_in_cleanup() -> None:
    guard = Guard(BUDGET, 75, 85, 95, cleanup_cooldown_s=2.0)
    times = [0.0, 0.5, 1.0, 1.99, 2.0, 2.5, 3.9, 4.0]
    decisions = [d for t in times if (d := guard.observe(reading(88, t=t))) is not None]
    assert [d.t for d in decisions] == [0.0, 2.0, 4.0]
    assert all(d.action == "cleanup" and d.level is GuardLevel.CLEANUP for d in decisions)
    assert decisions[1].previous is GuardLevel.CLEANUP
    assert "still ≥ cleanup 85%" in decisions[1].reason


def test_abort_latches_until_reset() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    decisions = feed(guard, [50, 96, 10, 10, 99])
    assert [d.action for d in decisions] == ["abort"]
    assert guard.level.label == "abort"
    guard.reset()
    assert guard.level is GuardLevel.OK
    assert guard.observe(reading(10, t=10)) is None
    again = guard.observe(reading(96, t=11))
    assert again is not None and again.action == "abort" and again.previous is GuardLevel.OK


def test_reset_forgets_hysteresis_state() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    feed(guard, [80])
    guard.reset()
    assert guard.observe(reading(73, t=5)) is None  # 73 % held warn before; after reset it is ok
    assert guard.level is GuardLevel.OK


def test_macos_warning_pressure_means_at_least_warn() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    decision = guard.observe(reading(10, pressure_level=2))
    assert decision is not None and decision.level is GuardLevel.WARN and decision.action == "warn"
    assert decision.reason == "macOS memory pressure warning"
    back = guard.observe(reading(10, t=1, pressure_level=1))
    assert back is not None and back.action == "recover" and back.level is GuardLevel.OK
    assert back.reason == "macOS memory pressure back to normal"


def test_warning_pressure_does_not_lower_a_cleanup() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    decision = guard.observe(reading(88, pressure_level=2))
    assert decision is not None and decision.level is GuardLevel.CLEANUP


def test_macos_critical_pressure_aborts() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    decision = guard.observe(reading(20, pressure_level=4))
    assert decision is not None and decision.level is GuardLevel.ABORT
    assert decision.reason == "macOS memory pressure critical"


def test_pressure_warn_then_bytes_warn_is_one_level() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    decisions = [
        guard.observe(reading(20, t=0, pressure_level=2)),
        guard.observe(reading(78, t=1, pressure_level=2)),
        guard.observe(reading(78, t=2, pressure_level=1)),  # pressure gone, bytes still ≥ warn
    ]
    assert [d.action if d else None for d in decisions] == ["warn", None, None]


def test_system_available_below_default_floor_aborts() -> None:
    guard = Guard(BUDGET, 75, 85, 95)
    ok = reading(10, system_available=4 * GiB, system_total=16 * GiB)
    assert guard.observe(ok) is None
    low = reading(10, t=1, system_available=int(0.5 * GiB), system_total=16 * GiB)
    decision = guard.observe(low)
    assert decision is not None and decision.level is GuardLevel.ABORT
    assert decision.reason == "system available 512.0 MiB < floor 819.2 MiB (5% of 16.0 GiB RAM)"


def test_system_floor_can_be_set_and_is_skipped_when_unknown() -> None:
    guard = Guard(BUDGET, 75, 85, 95, min_system_available=2 * GiB)
    assert guard.observe(reading(10, system_available=None)) is None
    assert guard.observe(reading(10, t=1, system_available=3 * GiB)) is None
    decision = guard.observe(reading(10, t=2, system_available=int(1.5 * GiB)))
    assert decision is not None and decision.reason == "system available 1.5 GiB < floor 2.0 GiB"


def test_from_config_and_decision_to_dict() -> None:
    guard = Guard.from_config(Budget(BUDGET, "explicit 8GiB"), GuardConfig(warn=50, cleanup=60, abort=70))
    decision = guard.observe(MemoryReading(t=3.0, guarded_bytes=5 * GiB, guarded_source="torch-mps"))
    assert decision is not None
    data = decision.to_dict()
    assert data["level"] == "cleanup" and data["previous"] == "ok" and data["action"] == "cleanup"
    assert data["reading"]["guarded_source"] == "torch-mps"
    assert data["reason"] == "worker memory 5.0 GiB (MPS driver-allocated) ≥ cleanup 60% of 8.0 GiB budget"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((BUDGET, 80, 70, 95), {}), ((0, 75, 85, 95), {}), ((BUDGET, 75, 85, 95), {"hysteresis_pct": -1})],
)
def test_bad_settings_are_refused(args: tuple[float, ...], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Guard(*args, **kwargs)  # type: ignore[arg-type]
