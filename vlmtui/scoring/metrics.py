"""The metrics a dataset's answers are scored by, and the registry that names them (docs/scoring.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from vlmtui.scoring.normalise import normalise

JUDGE_PREFIX = "judge:"
ANLS_THRESHOLD = 0.5
"""DocVQA's τ: a normalised Levenshtein distance of 0.5 or more scores 0."""
CONSENSUS_REFERENCES = 10
"""From this many references on, VQA's leave-one-out consensus applies; below it, one match is enough."""
_YES_NO = ("yes", "no")


class MetricError(ValueError):
    """A metric name that is not one; ``str()`` is the one line to print."""


class Score(NamedTuple):
    """One metric's score of one answer: ``value`` in [0, 1], or None with ``reason`` saying why."""

    value: float | None
    reason: str | None = None


@dataclass(frozen=True)
class Metric:
    """A parsed metric name: a built-in (``vqa``) or a judge (``judge:<model-id>``, scored by that model)."""

    name: str
    judge_model: str | None = None

    @property
    def is_judge(self) -> bool:
        """Scored by a model of the suite, not by :func:`score`."""
        return self.judge_model is not None


def _consensus(matches: Sequence[bool]) -> float:
    """VQA v2's rule over per-reference matches: leave-one-out min(1, others/3) averaged, or any-match."""
    n = len(matches)
    if n < CONSENSUS_REFERENCES:
        return 1.0 if any(matches) else 0.0
    total = sum(matches)
    # In thirds, so that 2 of 10 is exactly 18/30 = 0.6 and not 0.6000000000000001.
    return sum(min(3, total - match) for match in matches) / (3 * n)


def vqa(answer: str, references: Sequence[str]) -> float:
    """Official VQA v2 accuracy: equality after normalisation, with the 10-annotator consensus."""
    said = normalise(answer)
    return _consensus([normalise(ref) == said for ref in references])


def exact(answer: str, references: Sequence[str]) -> float:
    """1 if the normalised answer equals any normalised reference, else 0."""
    said = normalise(answer)
    return 1.0 if any(normalise(ref) == said for ref in references) else 0.0


def matches(answer_words: Sequence[str], reference: str) -> bool:
    """``relaxed``'s match: the first yes/no of the answer for a yes/no reference, else contiguous words."""
    ref_words = reference.split()
    if not ref_words:
        return not answer_words
    if reference in _YES_NO:
        return next((word for word in answer_words if word in _YES_NO), None) == reference
    width = len(ref_words)
    return any(list(answer_words[i : i + width]) == ref_words for i in range(len(answer_words) - width + 1))


def relaxed(answer: str, references: Sequence[str]) -> float:
    """VQA's consensus with "equal" relaxed to :func:`matches`, for verbose answers ("No, it is evening.")."""
    said = normalise(answer).split()
    return _consensus([matches(said, normalise(ref)) for ref in references])


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings, by characters."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def anls(answer: str, references: Sequence[str]) -> float:
    """DocVQA's ANLS for one answer: the best 1 − NL over references, 0 where NL ≥ 0.5."""
    said = normalise(answer)
    best = 0.0
    for ref in references:
        truth = normalise(ref)
        longest = max(len(said), len(truth))
        distance = levenshtein(said, truth) / longest if longest else 0.0
        if distance < ANLS_THRESHOLD:
            best = max(best, 1.0 - distance)
    return best


METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "vqa": vqa,
    "exact": exact,
    "relaxed": relaxed,
    "anls": anls,
}
"""The built-in metrics by name; ``judge:<model-id>`` is the one more kind, scored by the judge's cases."""


def parse_metric(name: str) -> Metric:
    """A metric name checked: a built-in or ``judge:<model-id>``; anything else is a :class:`MetricError`."""
    if name.startswith(JUDGE_PREFIX):
        model = name[len(JUDGE_PREFIX) :].strip()
        if not model:
            raise MetricError(f"metric {name!r} names no model: write judge:<model-id>")
        return Metric(name=f"{JUDGE_PREFIX}{model}", judge_model=model)
    if name not in METRICS:
        known = ", ".join([*METRICS, f"{JUDGE_PREFIX}<model-id>"])
        raise MetricError(f"unknown metric {name!r} (known: {known})")
    return Metric(name=name)


def score(metric: str, answer: str, references: Sequence[str]) -> Score:
    """One built-in metric's score of an answer; None with a reason where it cannot score."""
    parsed = parse_metric(metric)
    if parsed.is_judge:
        raise MetricError(f"metric {metric!r} is scored by the judge model's cases, not here")
    if not any(ref.strip() for ref in references):
        return Score(None, "no reference answers")
    return Score(METRICS[parsed.name](answer, references))


def score_all(
    metrics: Iterable[str], answer: str, references: Sequence[str]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """A case's ``scores`` and ``score_errors`` for the built-in metrics; judge metrics are left to the judge."""
    scores: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name in metrics:
        if parse_metric(name).is_judge:
            continue
        value, reason = score(name, answer, references)
        scores[name] = value
        if reason is not None:
            errors[name] = reason
    return scores, errors
