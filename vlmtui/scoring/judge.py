"""The judge model's side of scoring: the rubric prompt it is asked, and its reply read back as a score."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from vlmtui.scoring.metrics import Score
from vlmtui.text import excerpt

DEFAULT_JUDGE_PROMPT = """\
You are grading an answer to a question about an image.
Question: {question}
Reference answers (from people who saw the image): {references}
Answer to grade: {answer}
The answer is correct if it means the same as a reference answer; extra words are fine.
Reply with one line: "score: 1" if it is correct, "score: 0" if it is wrong, or a number between 0 and 1 \
if it is partly correct."""
"""The rubric; ``judge_prompt`` in the suite replaces it, with the same three placeholders."""

PLACEHOLDERS = ("question", "references", "answer")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_OUT_OF = rf"\s*(?:/|out\s+of)\s*{_NUMBER}"
_LABELLED = re.compile(rf"\b(?:score|rating|grade)\b[\s*:=]*(?:(?:is|of)\s+)?{_NUMBER}(?:{_OUT_OF})?", re.I)
_FRACTION = re.compile(rf"{_NUMBER}{_OUT_OF}", re.I)
_PERCENT = re.compile(rf"{_NUMBER}\s*%")
_THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_VERDICTS = {"yes": 1.0, "correct": 1.0, "true": 1.0, "no": 0.0, "incorrect": 0.0, "false": 0.0, "wrong": 0.0}


class JudgePromptError(ValueError):
    """A ``judge_prompt`` the user must fix; ``str()`` is the one line to print."""


def check_judge_prompt(template: str) -> None:
    """Raise :class:`JudgePromptError` unless the template has ``{answer}`` and only known placeholders."""
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        raise JudgePromptError(f"judge_prompt: unknown placeholder {{{unknown[0]}}} (known: {known})")
    if "{answer}" not in template:
        raise JudgePromptError("judge_prompt: has no {answer} placeholder, so the judge would not see the answer")


def format_references(references: Sequence[str]) -> str:
    """References once each, most given first, with how many gave them: ``"red" (8 of 10); "maroon" (2 of 10)``."""
    counts = Counter(ref.strip() for ref in references if ref.strip())
    if not counts:
        return "(none)"
    total = sum(counts.values())
    if total == 1:
        return f'"{next(iter(counts))}"'
    return "; ".join(f'"{ref}" ({count} of {total})' for ref, count in counts.most_common())


def judge_prompt(question: str, references: Sequence[str], answer: str, template: str = DEFAULT_JUDGE_PROMPT) -> str:
    """The rubric prompt for one judged answer; placeholders are filled in one pass, so text is never re-read."""
    values = {"question": question.strip(), "references": format_references(references), "answer": answer.strip()}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _ratio(numerator: str, denominator: str | None) -> float | None:
    """``numerator / denominator`` when that is a score in [0, 1]; a bare numerator must already be one."""
    value = float(numerator)
    if denominator is not None:
        scale = float(denominator)
        value = value / scale if scale > 0 else -1.0
    return value if 0.0 <= value <= 1.0 else None


def parse_judge_reply(reply: str) -> Score:
    """A judge's reply as a score: ``score: 0.8``, ``8/10``, ``80%``, a bare 0–1 number, or a leading yes/no."""
    text = _THINKING.sub(" ", reply).strip()
    quoted = f'"{excerpt(reply, 160)}"'
    if not text:
        return Score(None, f"empty judge reply: {quoted}")
    # The last labelled score or fraction wins: a judge that reasons first gives its verdict at the end.
    for pattern in (_LABELLED, _FRACTION):
        found = list(pattern.finditer(text))
        if found:
            value = _ratio(found[-1].group(1), found[-1].group(2))
            if value is None:
                return Score(None, f"judge score {found[-1].group(0).strip()!r} is outside 0–1: {quoted}")
            return Score(value)
    percents = _PERCENT.findall(text)
    if percents and (value := _ratio(percents[-1], "100")) is not None:
        return Score(value)
    bare = text.strip(" .*`'\"")
    if re.fullmatch(_NUMBER, bare) and (value := _ratio(bare, None)) is not None:
        return Score(value)
    first = re.match(r"[\W_]*([a-z]+)", text, re.I)
    if first and first.group(1).lower() in _VERDICTS:
        return Score(_VERDICTS[first.group(1).lower()])
    return Score(None, f"no score in judge reply: {quoted}")
