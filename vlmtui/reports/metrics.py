"""What the worker measured, read back from a log: a case's (or a conversation turn's) metrics and the
forgiving number readers every record uses (a field of the wrong type reads as unknown, never fails)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vlmtui.vocab import CaseStatus


def number(value: Any) -> float | None:
    """A JSON number as a float; anything else (a bool, a string, null) is unknown."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def whole(value: Any) -> int | None:
    """A JSON number as an int (token counts, bytes); anything else is unknown."""
    found = number(value)
    return None if found is None else int(found)


def text(value: Any) -> str:
    """A JSON value as text; null is the empty string."""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Metrics:
    """What the worker measured for one attempt; ``raw`` keeps every metric as logged (crash details too)."""

    load_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    gen_tokens: int | None = None
    prompt_tps: float | None = None
    gen_tps: float | None = None
    total_s: float | None = None
    peak_memory_bytes: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    energy_j: float | None = None
    j_per_token: float | None = None
    energy_source: str | None = None
    throttled: bool = False
    """The case's energy (docs/log-format.md); ``throttled``: clocks held down, its tok/s is not comparable."""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Metrics:
        """The metrics of a ``case_end`` line or a ``CaseResult``."""
        return cls(number(raw.get("load_s")), number(raw.get("ttft_s")), whole(raw.get("prompt_tokens")),
                   whole(raw.get("gen_tokens")), number(raw.get("prompt_tps")), number(raw.get("gen_tps")),
                   number(raw.get("total_s")), whole(raw.get("peak_memory_bytes")), raw,
                   number(raw.get("energy_j")), number(raw.get("j_per_token")), text(raw.get("energy_source")) or None,
                   raw.get("throttled") is True)

    def to_dict(self) -> dict[str, Any]:
        """The metrics as logged."""
        return dict(self.raw)


def measured(status: CaseStatus, metrics: Metrics) -> bool:
    """Whether an attempt ran to an answer with tokens (passed or failed): its time and speed count in means."""
    return status in (CaseStatus.PASSED, CaseStatus.FAILED) and bool(metrics.gen_tokens)
