"""Answers as the side-by-side view and the pager read them: which cases asked the same thing, and the text
of one case's answer. Plain functions over the session view (no widgets)."""

from __future__ import annotations

from dataclasses import dataclass

from vlmtui.reports.case_scores import JUDGE_KIND
from vlmtui.ui.tui.state import CaseView, SessionView


def group_key(row: CaseView) -> str:
    """What the case asked, the same for every model: its id without the model (``bicycle.jpg/p0``,
    ``text/t0``, ``vqa/item-3``, ``<conversation>/<image>``)."""
    prefix = f"{row.model}/"
    return row.case_id[len(prefix):] if row.case_id.startswith(prefix) else row.case_id


@dataclass(frozen=True)
class AnswerGroup:
    """One image × prompt (or dataset item): every model's case for it, in plan order."""

    key: str
    image: str
    """The image's file name, or ``text``."""
    prompt: str
    rows: tuple[CaseView, ...]


def answer_groups(view: SessionView) -> list[AnswerGroup]:
    """The image × prompt groups of the session in plan order (warm-ups and judges left out)."""
    found: dict[str, list[CaseView]] = {}
    for case_id in view.order:
        row = view.cases[case_id]
        if row.warmup or row.kind == JUDGE_KIND:
            continue
        found.setdefault(group_key(row), []).append(row)
    return [AnswerGroup(key, rows[0].image_name, rows[0].prompt, tuple(rows)) for key, rows in found.items()]


def answer_text(row: CaseView, stream: tuple[str, str] = ("", "")) -> str:
    """The case's answer: the streamed text while it runs, else its latest attempt's output (``""`` if none)."""
    if row.running:
        return stream[1] if stream[0] == row.case_id else ""
    latest = row.latest
    return latest.output if latest is not None else ""
