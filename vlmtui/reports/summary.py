"""Per-model summaries of case results: the table the original incident report wrote by hand."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vlmtui.engine.events import STATUSES


@dataclass
class ModelSummary:
    """Counts and means over one model's latest case results (warm-ups left out)."""

    model: str
    backend: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    total_s: list[float] = field(default_factory=list)
    gen_tps: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None

    @property
    def cases(self) -> int:
        """Cases counted."""
        return sum(self.counts.values())

    @property
    def mean_total_s(self) -> float | None:
        """Mean wall time of the cases that produced output."""
        return statistics.fmean(self.total_s) if self.total_s else None

    @property
    def std_total_s(self) -> float | None:
        """Standard deviation of the wall time (repeats), None under two samples."""
        return statistics.stdev(self.total_s) if len(self.total_s) > 1 else None

    @property
    def mean_gen_tps(self) -> float | None:
        """Mean generation speed in tokens per second."""
        return statistics.fmean(self.gen_tps) if self.gen_tps else None

    @property
    def std_gen_tps(self) -> float | None:
        """Standard deviation of the generation speed, None under two samples."""
        return statistics.stdev(self.gen_tps) if len(self.gen_tps) > 1 else None


def summarise(results: Iterable[Mapping[str, Any]]) -> list[ModelSummary]:
    """One summary per model, in first-seen order, from case results as dicts (log lines or ``to_dict``)."""
    by_model: dict[str, ModelSummary] = {}
    for result in results:
        if result.get("warmup"):
            continue
        summary = by_model.setdefault(result["model"], ModelSummary(result["model"], result.get("backend", "")))
        status = result.get("status", "failed")
        summary.counts[status] = summary.counts.get(status, 0) + 1
        metrics = result.get("metrics") or {}
        if status in ("passed", "failed") and metrics.get("gen_tokens"):
            if metrics.get("total_s") is not None:
                summary.total_s.append(float(metrics["total_s"]))
            if metrics.get("gen_tps"):
                summary.gen_tps.append(float(metrics["gen_tps"]))
        peak = metrics.get("peak_memory_bytes")
        if peak:
            summary.peak_memory_bytes = max(summary.peak_memory_bytes or 0, int(peak))
    return list(by_model.values())
