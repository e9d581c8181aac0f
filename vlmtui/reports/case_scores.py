"""A case's scores as its ``case_end`` line holds them, and the rules every reader applies to them: which
metric is primary, when an answer counts as right, and a judge's grade joined to the case it graded.

docs/log-format.md ("Scores") describes the fields; the engine writes them, the reports, ``compare``, the
dashboard, the headless printer and ``vlmtui score`` read them through this module only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlmtui.scoring.stats import ScoreSummary
from vlmtui.vocab import CaseStatus

if TYPE_CHECKING:
    from vlmtui.engine.events import CaseResult
    from vlmtui.reports.records import CaseEnd

DEFAULT_PASS_AT = 0.5
"""An answer is right when its primary score is at least this, where the log does not say (``pass_at``)."""
JUDGE_KIND = "judge"
"""The ``kind`` of a judge model's case: its ``scores`` grade another case's answer (``judged_case_id``)."""
MISSING = "—"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _name(value: Any) -> str | None:
    """A string field (a whole-number item id is taken as its digits); None if absent or blank."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class CaseScores:
    """One case's answer scored against its dataset's references; empty for a case without a dataset."""

    scores: Mapping[str, float | None] = field(default_factory=dict)
    """Per metric, in the dataset's order: a score in [0, 1], or None where it could not score."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Why a metric has no score (``score_errors`` in the log)."""
    references: tuple[str, ...] = ()
    dataset: str | None = None
    item_id: str | None = None
    answer_type: str | None = None
    primary_metric: str | None = None
    """As logged; :attr:`primary` falls back to the first metric of ``scores``."""
    pass_at: float | None = None

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> CaseScores:
        """The scores of a ``case_end`` line (or a ``CaseResult``'s dict); wrong types read as unknown."""
        raw_scores = line.get("scores")
        raw_errors = line.get("score_errors")
        raw_refs = line.get("references")
        scores = {str(k): _number(v) for k, v in raw_scores.items()} if isinstance(raw_scores, dict) else {}
        errors = {str(k): str(v) for k, v in raw_errors.items()} if isinstance(raw_errors, dict) else {}
        references = tuple(str(r) for r in raw_refs if r is not None) if isinstance(raw_refs, list) else ()
        return cls(scores, errors, references, _name(line.get("dataset")), _name(line.get("item_id")),
                   _name(line.get("answer_type")), _name(line.get("primary_metric")), _number(line.get("pass_at")))

    @classmethod
    def from_result(cls, result: CaseResult) -> CaseScores:
        """The scores of a live result (what its ``case_end`` line will hold), without copying the result."""
        if not (result.scores or result.dataset or result.references):
            return NO_SCORES
        return cls(dict(result.scores), dict(result.score_errors), tuple(result.references), result.dataset,
                   result.item_id, result.answer_type, result.primary_metric, result.pass_at)

    def to_dict(self) -> dict[str, Any]:
        """The log's fields for these scores, those at their defaults left out (as ``CaseResult`` writes them)."""
        data: dict[str, Any] = {
            "scores": dict(self.scores), "score_errors": dict(self.errors), "primary_metric": self.primary_metric,
            "pass_at": self.pass_at, "references": list(self.references), "dataset": self.dataset,
            "item_id": self.item_id, "answer_type": self.answer_type,
        }
        return {k: v for k, v in data.items() if v not in (None, {}, [])}

    @property
    def scored(self) -> bool:
        """Whether the case has any metric, scored or not (a case without a dataset has none)."""
        return bool(self.scores)

    @property
    def primary(self) -> str | None:
        """The metric that decides right or wrong: ``primary_metric``, else the first of ``scores``."""
        return self.primary_metric or next(iter(self.scores), None)

    @property
    def primary_value(self) -> float | None:
        """The primary metric's score; None while unscored (no references, a judge not run yet)."""
        primary = self.primary
        return None if primary is None else self.scores.get(primary)

    @property
    def metrics(self) -> list[str]:
        """Every metric, the primary first, then the others in the log's order."""
        primary = self.primary
        rest = [name for name in self.scores if name != primary]
        return rest if primary is None else [primary, *rest]

    @property
    def threshold(self) -> float:
        """``pass_at``, or :data:`DEFAULT_PASS_AT` where the log does not say."""
        return DEFAULT_PASS_AT if self.pass_at is None else self.pass_at

    @property
    def right(self) -> bool | None:
        """Primary score ≥ the threshold; None while the primary metric has no score."""
        value = self.primary_value
        return None if value is None else value >= self.threshold

    @property
    def item(self) -> str:
        """``dataset/item id`` (what a comparison lists), or ``""``."""
        return "/".join(part for part in (self.dataset, self.item_id) if part)

    def with_grades(self, judge: CaseScores) -> CaseScores:
        """These scores with a judge case's grades (its ``scores`` and ``score_errors``) put in."""
        errors = {k: v for k, v in self.errors.items() if k not in judge.scores}
        return CaseScores({**self.scores, **judge.scores}, {**errors, **judge.errors}, self.references,
                          self.dataset, self.item_id, self.answer_type, self.primary_metric, self.pass_at)


NO_SCORES = CaseScores()
"""The scores of a case without a dataset."""


@dataclass(frozen=True)
class Judging:
    """What a judge case graded: the judged case and the attempt whose answer it read (None: its latest)."""

    case_id: str
    attempt: int | None = None

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> Judging | None:
        """The ``judged_case_id`` and ``judged_attempt`` of a line; None for a case that judges nothing."""
        case_id = _name(line.get("judged_case_id"))
        attempt = line.get("judged_attempt")
        if case_id is None:
            return None
        return cls(case_id, attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None)


def joined_scores(results: Iterable[CaseEnd]) -> dict[str, CaseScores]:
    """Each case's scores with the grades of the judge cases that read its latest answer joined in.

    ``results`` are each case's latest attempt. A grade of an earlier attempt (the case was rerun after
    it was judged) is left out: it graded an answer the case no longer has.
    """
    latest = {result.case_id: result for result in results}
    joined = {case_id: result.scoring for case_id, result in latest.items()}
    for result in latest.values():
        judging = result.judging
        target = latest.get(judging.case_id) if judging is not None else None
        if judging is None or target is None or judging.attempt not in (None, target.attempt):
            continue
        joined[judging.case_id] = joined[judging.case_id].with_grades(result.scoring)
    return joined


def answered(status: str, metrics: Mapping[str, Any]) -> bool:
    """Whether an attempt ran to an answer that can be scored: passed or failed after reaching the model."""
    return status in (CaseStatus.PASSED, CaseStatus.FAILED) and bool(metrics)


def score_failure(scores: CaseScores) -> str | None:
    """The ``error`` of a case failed by its score (``vqa 0.30 is under pass_at 0.5``), or None if it passes."""
    value = scores.primary_value
    if value is None or value >= scores.threshold:
        return None
    return f"{scores.primary} {value:.2f} is under pass_at {scores.threshold:g}"


def score_status(status: str, error: str, before: CaseScores, after: CaseScores) -> tuple[str, str]:
    """The status and error of an answered case whose scores went from ``before`` to ``after``.

    A case that failed for another reason (an expectation) stays failed; otherwise the primary score
    decides: under ``pass_at`` fails with :func:`score_failure`'s line, else (or unscored) it passes.
    """
    if status not in (CaseStatus.PASSED, CaseStatus.FAILED):
        return status, error
    if status == CaseStatus.FAILED and error and error != score_failure(before):
        return status, error
    failure = score_failure(after)
    return (CaseStatus.FAILED, failure) if failure else (CaseStatus.PASSED, "")


def value_text(value: float | None, digits: int = 2) -> str:
    """One score: ``0.60``; ``—`` for none."""
    return MISSING if value is None else f"{value:.{digits}f}"


def score_text(summary: ScoreSummary | None, digits: int = 2) -> str:
    """A mean with its 95 % interval when there is one: ``0.80 (0.49–0.94)``, ``0.75``, ``—``."""
    if summary is None or summary.mean is None:
        return MISSING
    if summary.ci95 is None:
        return value_text(summary.mean, digits)
    low, high = summary.ci95
    return f"{summary.mean:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"
