"""The budget and the guard's settings as ``SessionStarted.info`` carries them: from the guard loop at the run's
start, and from ``prepare_session`` for the dashboard's first frame (before any guard loop exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmtui.memory.budget import Budget
    from vlmtui.suite.loader import GuardConfig


def guard_info(guard: GuardConfig, budget: Budget) -> dict[str, Any]:
    """``{"budget_bytes", "budget_source", "guard": {warn, cleanup, abort, on_abort, sample_ms}}``."""
    return {"budget_bytes": budget.bytes, "budget_source": budget.source,
            "guard": {"warn": guard.warn, "cleanup": guard.cleanup, "abort": guard.abort,
                      "on_abort": guard.on_abort, "sample_ms": guard.sample_ms}}
