"""A conversation's turns read back from a ``case_end`` (``turns``, docs/log-format.md), and the one-line and
table forms every view of them shares (dashboard, headless printer, reports).

A turn is ``{index, prompt, status, output, metrics, expect: {passed, reasons}, reason}``; its status is
``passed``, ``failed``, ``skipped`` (the model cannot take history) or ``not_run`` (the case ended before it).
Reading is as forgiving as the rest of the log: a malformed turn is left out, a wrong field reads as unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmtui.reports.metrics import Metrics, text, whole
from vlmtui.vocab import CaseStatus, status_look

CONVERSATION_KIND = "conversation"
"""The ``kind`` of a conversation case."""
TURNS_NOTE = ("Each turn's prompt was sent with the whole conversation before it; a skipped turn's model cannot "
              "take history, a turn not run came after the case ended.")


def turn_status(value: object) -> CaseStatus:
    """A turn's logged status (``not_run`` is written with an underscore) as a case status."""
    return CaseStatus.parse(str(value).replace("_", " "))


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: the prompt sent, the answer, how it was checked and what it cost."""

    index: int
    """0-based, in the order sent."""
    prompt: str
    status: CaseStatus
    output: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    passed: bool | None = None
    """The turn's ``expect`` verdict; None when it had no expectation or was not checked."""
    reasons: tuple[str, ...] = ()
    """Why ``expect`` failed (one line each)."""
    reason: str = ""
    """Why the turn was skipped or not run."""

    @property
    def number(self) -> int:
        """1-based, as people count turns."""
        return self.index + 1

    @property
    def why(self) -> str:
        """The expectation's reasons, else the skip or not-run reason, as one line (without a leading
        ``not run:`` that would repeat the status beside it)."""
        why = "; ".join(self.reasons) or self.reason
        word = self.status.value + ":"
        return why[len(word):].lstrip() if why.lower().startswith(word) else why

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], position: int) -> Turn:
        """The turn of one entry of ``turns`` (``position`` stands in for a missing index)."""
        expect = raw.get("expect")
        expect = expect if isinstance(expect, dict) else {}
        passed = expect.get("passed")
        reasons = expect.get("reasons")
        metrics = raw.get("metrics")
        index = whole(raw.get("index"))
        return cls(position if index is None else index, text(raw.get("prompt")), turn_status(raw.get("status")),
                   text(raw.get("output")), Metrics.from_dict(metrics if isinstance(metrics, dict) else {}),
                   passed if isinstance(passed, bool) else None,
                   tuple(str(r) for r in reasons) if isinstance(reasons, list) else (), text(raw.get("reason")))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report (the status as the log writes it)."""
        return {"index": self.index, "prompt": self.prompt, "status": self.status.value.replace(" ", "_"),
                "output": self.output, "metrics": self.metrics.to_dict(),
                "expect": {"passed": self.passed, "reasons": list(self.reasons)}, "reason": self.reason}


def read_turns(value: Any) -> tuple[Turn, ...]:
    """The turns of a ``case_end`` line's ``turns`` (entries that are not objects are left out)."""
    if not isinstance(value, list):
        return ()
    return tuple(Turn.from_dict(raw, i) for i, raw in enumerate(value) if isinstance(raw, dict))


def turn_figures(turn: Turn) -> str:
    """``1.20 s · 12.3 tok/s · 24 tok · prompt 310 tok`` (what was measured), or ``""``."""
    m = turn.metrics
    parts = [f"{m.total_s:.2f} s" if m.total_s is not None else "",
             f"{m.gen_tps:.1f} tok/s" if m.gen_tps is not None else "",
             f"{m.gen_tokens} tok" if m.gen_tokens is not None else "",
             f"prompt {m.prompt_tokens} tok" if m.prompt_tokens is not None else ""]
    return " · ".join(part for part in parts if part)


def turn_line(turn: Turn, total: int | None = None) -> str:
    """``✓ turn 2/3 pass · 1.20 s · 12.3 tok/s · 24 tok — reason``: one turn's outcome on one line."""
    look = status_look(turn.status)
    of = f"/{total}" if total else ""
    figures = turn_figures(turn)
    line = f"{look.mark} turn {turn.number}{of} {look.word}" + (f" · {figures}" if figures else "")
    return line + (f" — {turn.why}" if turn.why else "")


def first_failing(turns: Sequence[Turn]) -> Turn | None:
    """The first turn that failed (the one a failed conversation's error names)."""
    return next((t for t in turns if t.status == CaseStatus.FAILED), None)
