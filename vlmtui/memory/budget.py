"""The memory budget the guard measures against, and the warn/cleanup/abort thresholds in bytes.

Pure: the device summary (``frameworks.device_info()``, taken in the worker) and the system RAM total
come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmtui.units import format_bytes, parse_size


@dataclass(frozen=True)
class Budget:
    """How many bytes the guarded quantity may grow to, and where that number came from."""

    bytes: int
    source: str
    """E.g. ``metal recommended working set``, ``cuda total``, ``system RAM``, ``explicit 12GiB``,
    ``60% of RAM``."""

    def __str__(self) -> str:
        return f"{format_bytes(self.bytes)} ({self.source})"

    def thresholds(self, warn_pct: float, cleanup_pct: float, abort_pct: float) -> Thresholds:
        """The thresholds of a ``[guard]`` table over this budget."""
        return Thresholds(self.bytes, warn_pct, cleanup_pct, abort_pct)


@dataclass(frozen=True)
class Thresholds:
    """warn ≤ cleanup ≤ abort, as percentages of the budget and as bytes."""

    budget_bytes: int
    warn_pct: float
    cleanup_pct: float
    abort_pct: float

    def __post_init__(self) -> None:
        if self.budget_bytes <= 0:
            raise ValueError(f"the memory budget must be positive, got {self.budget_bytes} bytes")
        if not 0 < self.warn_pct <= self.cleanup_pct <= self.abort_pct:
            raise ValueError(
                f"thresholds must rise: warn {self.warn_pct:g}% ≤ cleanup {self.cleanup_pct:g}% "
                f"≤ abort {self.abort_pct:g}%"
            )

    def bytes_at(self, pct: float) -> int:
        """``pct`` percent of the budget, in whole bytes (comparisons are made in bytes, not floats)."""
        return int(self.budget_bytes * pct / 100.0)

    @property
    def warn_bytes(self) -> int:
        """Bytes at which the guard warns."""
        return self.bytes_at(self.warn_pct)

    @property
    def cleanup_bytes(self) -> int:
        """Bytes at which the guard asks the worker to free caches."""
        return self.bytes_at(self.cleanup_pct)

    @property
    def abort_bytes(self) -> int:
        """Bytes at which the guard aborts the case."""
        return self.bytes_at(self.abort_pct)

    def fraction(self, used_bytes: int) -> float:
        """``used_bytes`` as a fraction of the budget (1.0 = all of it)."""
        return used_bytes / self.budget_bytes


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def resolve_budget(spec: str, device: dict[str, Any], system_total: int) -> Budget:
    """The budget for ``GuardConfig.budget``: ``"auto"``, a size (``"12GiB"``) or ``"NN%"`` of system RAM.

    auto: Metal's recommended working set on Apple Silicon (from MLX, else from torch MPS — the same
    Metal property), else the first CUDA GPU's total memory, else system RAM. ValueError for a spec
    the suite parser would have refused.
    """
    text = spec.strip()
    if text == "auto":
        metal = device.get("metal") or {}
        if (size := _positive_int(metal.get("max_recommended_working_set_size"))) is not None:
            return Budget(size, "metal recommended working set")
        mps = device.get("mps") or {}
        if (size := _positive_int(mps.get("recommended_max_memory"))) is not None:
            return Budget(size, "metal recommended working set (torch mps)")
        cuda = device.get("cuda") or []
        if cuda and (size := _positive_int(cuda[0].get("total_memory"))) is not None:
            return Budget(size, "cuda total")
        if system_total <= 0:
            raise ValueError("cannot size the memory budget: system RAM total is unknown")
        return Budget(system_total, "system RAM")
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            raise ValueError(f"not a percentage of RAM: {spec!r} (write it like 60%)") from None
        if not 0 < pct <= 100:
            raise ValueError(f"a percentage of RAM must be between 0 and 100, got {spec!r}")
        return Budget(int(system_total * pct / 100.0), f"{pct:g}% of RAM")
    size = parse_size(text)
    if size <= 0:
        raise ValueError(f"the memory budget must be positive, got {spec!r}")
    return Budget(size, f"explicit {text}")
