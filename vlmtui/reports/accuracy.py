"""How well a model answered: its cases' scores summarised per metric, per answer type, per dataset, and
its primary accuracy (mean with a 95 % interval from ``scoring.stats``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vlmtui.reports.case_scores import CaseScores, score_text
from vlmtui.scoring import stats

MIXED_PRIMARY = "primary"
"""The metric a model's accuracy is named by when its datasets lead with different metrics."""


@dataclass(frozen=True)
class Accuracy:
    """A model's primary score: the metric it is (or :data:`MIXED_PRIMARY`) and the mean, n and interval."""

    metric: str
    summary: stats.ScoreSummary

    @property
    def text(self) -> str:
        """``0.80 (0.49–0.94)``: the mean, with its interval from 10 scored answers on."""
        return score_text(self.summary)


def metric_names(cases: Sequence[CaseScores]) -> list[str]:
    """Every metric the cases have, in first-seen order (each case's primary first)."""
    names: dict[str, None] = {}
    for case in cases:
        names.update(dict.fromkeys(case.metrics))
    return list(names)


def by_metric(cases: Sequence[CaseScores]) -> dict[str, stats.ScoreSummary]:
    """Per metric: the mean, n and interval over the cases that have it (None scores counted as unscored)."""
    return {name: stats.summarise(case.scores.get(name) for case in cases if name in case.scores or
                                  name == case.primary) for name in metric_names(cases)}


def by_group(cases: Sequence[CaseScores], key: Callable[[CaseScores], str | None]
             ) -> dict[str, dict[str, stats.ScoreSummary]]:
    """:func:`by_metric` per group (an answer type, a dataset); cases without a group are left out."""
    groups: dict[str, list[CaseScores]] = {}
    for case in cases:
        group = key(case)
        if group is not None:
            groups.setdefault(group, []).append(case)
    return {group: by_metric(members) for group, members in sorted(groups.items())}


def primary_accuracy(cases: Sequence[CaseScores]) -> Accuracy | None:
    """The mean of each case's primary score (None without scored cases), named by that metric."""
    scored = [case for case in cases if case.scored]
    if not scored:
        return None
    primaries = {case.primary for case in scored}
    metric = primaries.pop() if len(primaries) == 1 else None
    return Accuracy(metric or MIXED_PRIMARY, stats.summarise(case.primary_value for case in scored))
