"""Immutable memory samples. Each probe returns one of these, or ``None`` where its source does not exist."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FrameworkSample:
    """Memory as the framework holding the model sees it (taken inside the worker)."""

    framework: str
    """``mlx``, ``torch-cuda``, ``torch-mps`` or ``torch-cpu``."""
    device: str
    guarded_bytes: int
    """The quantity the guard watches: MLX active+cache, MPS driver-allocated, CUDA reserved."""
    active_bytes: int | None = None
    cache_bytes: int | None = None
    peak_bytes: int | None = None
    limit_bytes: int | None = None
    """The framework's own limit or recommended maximum (MLX memory limit, MPS recommended max)."""
    device_total_bytes: int | None = None
    device_free_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the protocol and the log."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameworkSample:
        """The inverse of ``to_dict`` (unknown keys ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
