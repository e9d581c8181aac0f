"""A conversation as the output pane and the details dialog show it: each turn's prompt above its answer, then
the turn's outcome. The live stream (``bridge``) and a finished case (``presenter``) use the same pieces, so a
conversation reads the same while it runs and after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from vlmtui.reports.turns import Turn, read_turns, turn_line
from vlmtui.text import printable
from vlmtui.ui.tui.format import rate, seconds, status_mark
from vlmtui.vocab import CaseStatus

PROMPT_MARK = "›"
"""Starts a turn's prompt line in the plain-text transcript."""


def prompt_line(index: int, prompt: str, total: int | None, *, first: bool) -> str:
    """``› 2/3 What were the colours?`` on its own line (a blank line before every turn but the first)."""
    of = f"{index + 1}/{total}" if total else f"{index + 1}"
    return ("" if first else "\n\n") + f"{PROMPT_MARK} {of} {' '.join(prompt.split())}\n"


def outcome_line(turn: Turn, total: int | None, before: str) -> str:
    """The line under a turn's answer (``✓ turn 1/3 pass · 0.59 s · …``), on a line of its own after ``before``
    (the text so far: a turn without an answer has its outcome right under its prompt)."""
    return ("" if before.endswith("\n") else "\n") + turn_line(turn, total)


def transcript(turns: Sequence[Turn], total: int | None = None) -> str:
    """A finished conversation as plain text: every turn's prompt, answer and outcome, in order."""
    total = total or len(turns) or None
    text = ""
    for i, turn in enumerate(turns):
        text += prompt_line(turn.index, turn.prompt, total, first=i == 0) + turn.output
        text += outcome_line(turn, total, text)
    return text


def turn_from_event(raw: Mapping[str, Any], index: int) -> Turn:
    """The ``Turn`` a ``TurnFinished`` carries."""
    found = read_turns([dict(raw)])
    return found[0] if found else Turn(index, "", CaseStatus.FAILED)


def describe_turns(turns: Sequence[Turn], total: int | None = None) -> list[RenderableType]:
    """The details dialog's conversation: per turn, its prompt, answer, status with figures, and why."""
    total = total or len(turns) or None
    parts: list[RenderableType] = [Text("\nconversation", style="bold")]
    for turn in turns:
        mark, style = status_mark(turn.status)
        of = f"{turn.number}/{total}" if total else str(turn.number)
        parts.append(Text.assemble(("\n" if turn.index else "", ""), (f"{PROMPT_MARK} turn {of}  ", "bold"),
                                   (printable(turn.prompt), "bold cyan")))
        if turn.output:
            parts.append(Text(printable(turn.output)))
        figures = Table.grid(padding=(0, 2))
        m = turn.metrics
        cells = [Text(f"{mark} {turn.status}", style=style)]
        if m.total_s is not None or turn.status in (CaseStatus.PASSED, CaseStatus.FAILED):
            cells += [Text(f"{seconds(m.total_s)} s"), Text(f"ttft {seconds(m.ttft_s)} s"),
                      Text(f"{rate(m.gen_tps)} tok/s"),
                      Text(f"{m.gen_tokens if m.gen_tokens is not None else '—'} tok"),
                      Text(f"prompt {m.prompt_tokens if m.prompt_tokens is not None else '—'} tok",
                           style="bright_black")]
        for _ in cells:
            figures.add_column()
        figures.add_row(*cells)
        parts.append(figures)
        for reason in turn.reasons or ((turn.why,) if turn.why else ()):
            parts.append(Text(printable(reason), style="red" if turn.status == CaseStatus.FAILED
                              else "bright_black"))
    return parts
