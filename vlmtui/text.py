"""Untrusted text — model output, errors, file names — made safe to show, by one set of rules.

Model output may hold escape sequences, control characters and, read back from JSON, lone
surrogates; none of that may reach a terminal, a report or an encoder as it is. Every view picks
the shape it needs: ``printable`` keeps the lines (the output pane, the case detail), ``one_line``
folds them into spaces (table cells), ``excerpt`` marks them with ``·`` (logs, reports, headless
lines, where a folded newline would hide that the model wrote one), ``middle`` cuts a name in its
middle.
"""

from __future__ import annotations

import re

SURROGATE = re.compile("[\ud800-\udfff]")
"""Lone UTF-16 surrogates: valid in a Python str and in JSON, not encodable as UTF-8."""


def clean(text: str) -> str:
    """Text safe to encode: lone surrogates become U+FFFD."""
    return SURROGATE.sub("\ufffd", text) if text else ""


def printable(text: str) -> str:
    """Text safe for a terminal, lines kept: control characters (escape sequences) shown as ``·``."""
    return "".join(c if c.isprintable() or c in "\n\t" else "·" for c in text)


def excerpt(text: str, limit: int = 80) -> str:
    """Text on one line: newlines and control characters as ``·``, cut at ``limit`` with ``…``."""
    flat = "".join(c if c.isprintable() else "·" for c in clean(text).strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def one_line(text: str, limit: int) -> str:
    """Text flattened to one line (whitespace runs as one space) and cut at ``limit`` with ``…``."""
    flat = " ".join(printable(text).split())
    if limit <= 0:
        return ""
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def middle(text: str, limit: int) -> str:
    """Text cut to ``limit`` with ``…`` in the middle: names that differ at the end stay apart
    (``llava-n…ny-mlx`` and ``llava-n…iny-hf``)."""
    flat = " ".join(printable(text).split())
    if len(flat) <= limit:
        return flat
    if limit <= 2:
        return flat[:limit]
    tail = (limit - 1) // 2
    return flat[: limit - 1 - tail] + "…" + flat[len(flat) - tail:]


def plural(n: int, word: str) -> str:
    """``1 case``, ``3 cases``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def and_more(count: int) -> str:
    """`` (and 2 more)`` after the first of ``count`` things a one-line message names; nothing for one."""
    return f" (and {count - 1} more)" if count > 1 else ""
