"""Per-model summaries of case results: the table the original incident report wrote by hand."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vlmtui.peak_kind import merged_kind
from vlmtui.reports.accuracy import Accuracy, by_group, by_metric, primary_accuracy
from vlmtui.reports.case_scores import CaseScores, joined_scores
from vlmtui.reports.records import CaseEnd, measured
from vlmtui.scoring.stats import ScoreSummary
from vlmtui.vocab import RESULT_STATUSES, count_by_status


@dataclass(frozen=True)
class Stat:
    """Mean and standard deviation of a metric over ``n`` samples (std is None under two)."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        """The statistic of the values that are not None."""
        samples = [float(v) for v in values if v is not None]
        mean = statistics.fmean(samples) if samples else None
        std = statistics.stdev(samples) if len(samples) > 1 else None
        return cls(mean, std, len(samples))

    def text(self, digits: int = 2) -> str:
        """``1.23 ± 0.04`` (llama-bench style), ``1.23`` for one sample, ``—`` for none."""
        if self.mean is None:
            return "—"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {"mean": self.mean, "std": self.std, "n": self.n}


@dataclass
class ModelSummary:
    """Counts, means and scores over one model's latest case results (warm-ups left out)."""

    model: str
    backend: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULT_STATUSES, 0))
    total_s: list[float] = field(default_factory=list)
    """Wall time of each case that answered with tokens (passed or failed)."""
    gen_tps: list[float] = field(default_factory=list)
    j_per_token: list[float] = field(default_factory=list)
    """Joules per generated token of each measured case with an energy figure (docs/telemetry.md)."""
    energy_j: float | None = None
    """The energy of all those cases together; None when none had a figure."""
    throttled: int = 0
    """Cases whose clocks were held down (their tok/s is not comparable)."""
    peak_memory_bytes: int | None = None
    peak_kind: str | None = None
    """What the peaks measured (vlmtui/peak_kind.py): one kind, ``mixed``, or None when the log does not say."""
    scoring: list[CaseScores] = field(default_factory=list)
    """The scores of each scored case (a judge's grades joined in; judge cases left out)."""

    @property
    def cases(self) -> int:
        """Cases counted."""
        return sum(self.counts.values())

    @property
    def total_stat(self) -> Stat:
        """Mean and spread of the wall time."""
        return Stat.of(self.total_s)

    @property
    def gen_tps_stat(self) -> Stat:
        """Mean and spread of the generation speed in tokens per second."""
        return Stat.of(self.gen_tps)

    @property
    def j_per_token_stat(self) -> Stat:
        """Mean and spread of the joules per generated token."""
        return Stat.of(self.j_per_token)

    @property
    def mean_j_per_token(self) -> float | None:
        """Mean joules per generated token; None when no case had an energy figure."""
        return self.j_per_token_stat.mean

    @property
    def mean_total_s(self) -> float | None:
        """Mean wall time of the cases that produced output."""
        return self.total_stat.mean

    @property
    def mean_gen_tps(self) -> float | None:
        """Mean generation speed in tokens per second."""
        return self.gen_tps_stat.mean

    @property
    def accuracy(self) -> Accuracy | None:
        """The primary score's mean, n and 95 % interval; None when no case of the model was scored."""
        return primary_accuracy(self.scoring)

    def scores(self) -> dict[str, ScoreSummary]:
        """Per metric: mean, n and 95 % interval."""
        return by_metric(self.scoring)

    def scores_by_answer_type(self) -> dict[str, dict[str, ScoreSummary]]:
        """:meth:`scores` per answer type (``yes/no``, ``number``, ``other``)."""
        return by_group(self.scoring, lambda case: case.answer_type)

    def scores_by_dataset(self) -> dict[str, dict[str, ScoreSummary]]:
        """:meth:`scores` per dataset."""
        return by_group(self.scoring, lambda case: case.dataset)


def summarise(results: Iterable[CaseEnd]) -> list[ModelSummary]:
    """One summary per model, in first-seen order, from each case's latest result."""
    results = list(results)
    joined = joined_scores(results)
    by_model: dict[str, list[CaseEnd]] = {}
    for result in results:
        if not result.warmup:
            by_model.setdefault(result.model, []).append(result)
    summaries = []
    for model, group in by_model.items():
        summary = ModelSummary(model, group[0].backend, count_by_status(group, zeros=RESULT_STATUSES))
        for result in group:
            metrics = result.metrics
            if measured(result.status, metrics):
                if metrics.total_s is not None:
                    summary.total_s.append(metrics.total_s)
                if metrics.gen_tps:
                    summary.gen_tps.append(metrics.gen_tps)
                if metrics.j_per_token is not None:
                    summary.j_per_token.append(metrics.j_per_token)
                if metrics.energy_j is not None:
                    summary.energy_j = (summary.energy_j or 0.0) + metrics.energy_j
                summary.throttled += metrics.throttled
            if metrics.peak_memory_bytes:
                summary.peak_memory_bytes = max(summary.peak_memory_bytes or 0, metrics.peak_memory_bytes)
                summary.peak_kind = merged_kind((summary.peak_kind, metrics.raw.get("peak_kind")))
            if joined[result.case_id].scored and not result.is_judge:
                summary.scoring.append(joined[result.case_id])
        summaries.append(summary)
    return summaries
