"""A metric's mean over a model's answers, with a 95 % interval once there are enough of them.

Scores that are all 0 or 1 (``exact``, most ``relaxed`` and ``vqa`` runs with few references, yes/no
judges) are a proportion: the interval is Wilson's score interval, which stays inside [0, 1] and keeps
its coverage near 0 and 1, where the normal (Wald) interval collapses to a point (20 of 20 right would
claim [1, 1]). Any other scores (VQA's thirds, ANLS, graded judges) get Student's t interval on the
mean, clipped to [0, 1], the range every metric lives in. Below :data:`MIN_N_FOR_INTERVAL` answers no
interval is given: it would be wider than it is useful.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist, fmean, stdev
from typing import Any

MIN_N_FOR_INTERVAL = 10
CONFIDENCE = 0.95
_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)


@dataclass(frozen=True)
class ScoreSummary:
    """One metric over a set of answers: mean of the scored ones, how many, and the 95 % interval."""

    mean: float | None
    n: int
    ci95: tuple[float, float] | None = None
    method: str | None = None
    """``"wilson"`` or ``"t"``: how ``ci95`` was computed."""
    unscored: int = 0
    """Answers whose score was None (no references, an unreadable judge reply): not in ``mean`` or ``n``."""

    def as_dict(self) -> dict[str, Any]:
        """The report's JSON shape: ``{"mean": x, "n": n, "ci95": [lo, hi] or null}``, plus ``unscored`` if any."""
        shaped: dict[str, Any] = {"mean": self.mean, "n": self.n, "ci95": list(self.ci95) if self.ci95 else None}
        if self.unscored:
            shaped["unscored"] = self.unscored
        return shaped


def t_quantile(df: int, probability: float = 0.5 + CONFIDENCE / 2) -> float:
    """Student's t quantile by the Cornish–Fisher expansion (Hill 1970): within 2e-5 of exact for df ≥ 9."""
    z = NormalDist().inv_cdf(probability)
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + math.fsum(term / df**power for power, term in enumerate(terms, 1))


def wilson_interval(successes: float, n: int, z: float = _Z) -> tuple[float, float]:
    """Wilson's score interval for a proportion of ``successes`` out of ``n``."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: list[float]) -> tuple[float, float]:
    """Student's t interval on the mean of ``values`` (n ≥ 2), clipped to [0, 1]."""
    mean = fmean(values)
    half = t_quantile(len(values) - 1) * stdev(values) / math.sqrt(len(values))
    return max(0.0, mean - half), min(1.0, mean + half)


def summarise(scores: Iterable[float | None]) -> ScoreSummary:
    """Mean and 95 % interval of the scores that are not None (Wilson if all are 0/1, else t)."""
    values: list[float] = []
    unscored = 0
    for value in scores:
        if value is None:
            unscored += 1
        else:
            values.append(value)
    if not values:
        return ScoreSummary(mean=None, n=0, unscored=unscored)
    n = len(values)
    mean = fmean(values)
    if n < MIN_N_FOR_INTERVAL:
        return ScoreSummary(mean=mean, n=n, unscored=unscored)
    if all(value in (0.0, 1.0) for value in values):
        return ScoreSummary(mean, n, wilson_interval(sum(values), n), "wilson", unscored)
    return ScoreSummary(mean, n, t_interval(values), "t", unscored)


def summarise_by(scores: Iterable[tuple[str | None, float | None]]) -> dict[str, ScoreSummary]:
    """:func:`summarise` per group (an ``answer_type``); answers without a group are left out."""
    groups: dict[str, list[float | None]] = {}
    for group, value in scores:
        if group is not None:
            groups.setdefault(group, []).append(value)
    return {group: summarise(values) for group, values in sorted(groups.items())}
