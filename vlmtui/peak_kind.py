"""What a peak-memory figure measured (a case's ``peak_kind``, docs/log-format.md), in a word shown beside it.

Peaks of different kinds are different quantities: a transformers case on CPU peaks at the worker's RSS
(~409 MiB with torch imported), an mlx-vlm case at MLX's active memory (1.6 MiB for the same tiny model), a
server case at the server process tree's RSS. Every place that shows a peak says which it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from vlmtui.units import format_bytes

LABELS = {
    "rss": "RSS",
    "mlx-active": "MLX",
    "mlx-active+cache": "MLX+cache",
    "cuda-allocated": "CUDA alloc",
    "cuda-reserved": "CUDA",
    "mps-driver": "MPS",
    "server-rss": "server",
}
"""The word beside a peak: ``RSS`` the worker's resident memory, ``MLX`` MLX's active memory, ``server`` the
managed server's process tree RSS, ``CUDA``/``CUDA alloc`` torch's reserved/allocated, ``MPS`` the driver's."""

SHORT_LABELS = {
    "rss": "RSS",
    "mlx-active": "MLX",
    "mlx-active+cache": "MLX+",
    "cuda-allocated": "CUDA",
    "cuda-reserved": "CUDA",
    "mps-driver": "MPS",
    "server-rss": "srv",
}
"""At most four cells, for the dashboard's queue column (``431M srv``); its details say it in full."""

MIXED = "mixed"
"""The kind of a peak over cases that measured different things (a model summary)."""


def peak_label(kind: str | None) -> str:
    """The word for ``kind``; ``""`` when unknown (a log written before peaks said what they measured)."""
    return LABELS.get(kind, kind) if kind else ""


def format_peak(value: float | None, kind: str | None, *, short: bool = False) -> str:
    """``409.0 MiB RSS``, ``1.6 MiB MLX``; just the size when the kind is unknown; ``—`` without a value.
    ``short`` fits ten cells: a three-digit size and a word of four at most (``431M srv``, ``1.1M MLX``)."""
    text = compact_bytes(value) if short else format_bytes(value)
    label = (SHORT_LABELS.get(kind, kind[:4]) if kind else "") if short else peak_label(kind)
    return f"{text} {label}" if value is not None and label else text


def compact_bytes(value: float | None) -> str:
    """``431M``, ``1.1M``, ``15G``: two or three significant digits and a binary unit's letter."""
    if value is None:
        return "—"
    size, unit = float(value), "B"
    for letter in ("K", "M", "G", "T"):
        if size < 1000:
            break
        size, unit = size / 1024, letter
    return f"{size:.1f}{unit}" if size < 10 and unit != "B" else f"{size:.0f}{unit}"


def merged_kind(kinds: Iterable[str | None]) -> str | None:
    """One kind for several peaks: theirs when all agree, ``mixed`` when they differ, None when none is known."""
    known = {kind for kind in kinds if kind}
    if not known:
        return None
    return known.pop() if len(known) == 1 else MIXED
