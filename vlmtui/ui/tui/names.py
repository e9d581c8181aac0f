"""Short labels for model and file names in narrow columns: cut at the end, yet never two alike.

Names of one suite often share a long head (``smolvlm-500m-tiny-mlx``, ``smolvlm-500m-tiny-server``), so a
plain cut at the end can make two models look the same; those keep a little of the head, ``…`` and the part
that tells them apart (``smolv…server``, ``smolv…mlx``).
"""

from __future__ import annotations

from collections.abc import Iterable

from vlmtui.text import one_line

MIN_HEAD = 3
"""Characters of the shared head kept before ``…`` when the tail has to tell names apart."""


def end_cut(name: str, width: int) -> str:
    """``name`` on one line, cut at the end with ``…`` to ``width`` cells (never a bare ``…`` when width ≥ 2)."""
    if width <= 1:
        return one_line(name, 2)[:width]
    return one_line(name, width)


def _shared_head(names: list[str]) -> int:
    """How many leading characters all ``names`` share."""
    shortest = min(names, key=len)
    for i, char in enumerate(shortest):
        if any(name[i] != char for name in names):
            return i
    return len(shortest)


def _apart(name: str, head: int, shared: int, width: int) -> str:
    """``head`` characters, ``…`` and what follows the ``shared`` prefix, cut at the end to ``width``."""
    label = name[:head] + "…" + name[shared:]
    return label if len(label) <= width else label[: width - 1] + "…"


def name_labels(names: Iterable[str], width: int) -> dict[str, str]:
    """A label of at most ``width`` cells for each name: whole when it fits, else cut at the end; names whose
    cuts would read alike keep what tells them apart instead."""
    flat = {name: " ".join(name.split()) for name in names}
    labels = {name: end_cut(text, width) for name, text in flat.items()}
    groups: dict[str, list[str]] = {}
    for name, label in labels.items():
        groups.setdefault(label, []).append(name)
    for label, alike in groups.items():
        if len(alike) < 2 or not label.endswith("…") or width < MIN_HEAD + 3:
            continue
        shared = _shared_head([flat[name] for name in alike])
        longest_tail = max(len(flat[name]) - shared for name in alike)
        head = min(max(width - 1 - longest_tail, MIN_HEAD), shared, width - 2)  # one head for the group
        for name in alike:
            labels[name] = _apart(flat[name], head, shared, width)
    return labels
