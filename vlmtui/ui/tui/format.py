"""How the dashboard writes numbers, statuses and model text: short, with units, one cell wide where it can.

Marks, words and colours of statuses, guard levels and run states come from ``vlmtui.vocab``, shared
with the headless printer and the reports; what only the dashboard shows is named here.
"""

from __future__ import annotations

from vlmtui.peak_kind import format_peak
from vlmtui.vocab import status_look

PRESSURE_NAMES: dict[int, tuple[str, str]] = {
    1: ("normal", "green"),
    2: ("warning", "yellow"),
    4: ("critical", "bold red"),
}
"""macOS ``kern.memorystatus_vm_pressure_level`` values and how they are shown."""

FRAMEWORK_LABELS: dict[str, str] = {
    "mlx": "MLX",
    "torch-mps": "MPS",
    "torch-cuda": "CUDA",
    "torch-cpu": "torch",
    "rss": "RSS",
    "server-rss": "srv",
}
"""Short names of the guarded quantity's source."""


def status_mark(status: str) -> tuple[str, str]:
    """The one-cell mark and style of a status (``vocab`` says how each status is shown)."""
    look = status_look(status)
    return look.mark, look.style


def status_label(status: str, attempt: int = 1) -> str:
    """``✓ pass``, with ``×N`` when this is the N-th attempt."""
    look = status_look(status)
    return f"{look.mark} {look.word}" + (f" ×{attempt}" if attempt > 1 else "")


def seconds(value: float | None) -> str:
    """``0.26``, ``12.3``, ``123`` (seconds), ``—`` for unknown."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def rate(value: float | None) -> str:
    """Tokens per second: ``42.1``, ``575``; ``—`` for unknown."""
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def clock(elapsed: float) -> str:
    """Elapsed time as ``MM:SS`` (``H:MM:SS`` past an hour)."""
    total = max(int(elapsed), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def size(n: float | None, kind: str | None = None) -> str:
    """A size with its unit (``406.3 MiB``); a peak with what it measured (``406.3 MiB RSS``, vlmtui/peak_kind.py)."""
    return format_peak(n, kind)


def size_pair(used: float | None, total: float | None) -> str:
    """``12.1/16.0 GiB``: both numbers in the unit of the larger one."""
    if used is None or total is None or total <= 0:
        return size(used)
    unit, scale = "B", 1.0
    for name, factor in (("TiB", 1024.0**4), ("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0)):
        if max(used, total) >= factor:
            unit, scale = name, factor
            break
    return f"{used / scale:.1f}/{total / scale:.1f} {unit}"


ASCII_GLYPHS: dict[str, str] = {
    # status, guard and run-state marks (vocab), one cell each
    "✓": "+", "✗": "x", "☠": "X", "■": "#", "–": "-", "▶": ">", "·": ".", "●": "*", "◌": "o", "‖": "|",
    "⚠": "!", "…": "~", "×": "x", "␣": "_", "⏎": "<", "↑": "^", "↓": "v", "←": "<", "→": ">", "°": "o",
    # gauges: eighths of a cell, full cells and the marks drawn on a bar
    "▏": "-", "▎": "-", "▍": "-", "▌": "=", "▋": "=", "▊": "=", "▉": "#", "█": "#", "▐": "|", "▕": "|",
    # sparklines and history: eighths of a cell's height
    "▁": "_", "▂": "_", "▃": ".", "▄": "-", "▅": "=", "▆": "+", "▇": "*",
    # borders, rules and scrollbars
    "─": "-", "━": "-", "│": "|", "┃": "|", "╌": "-", "╍": "-", "┄": "-", "╴": "-", "╶": "-", "╸": "-", "╺": "-",
    "┌": "+", "┐": "+", "└": "+", "┘": "+", "├": "+", "┤": "+", "┬": "+", "┴": "+", "┼": "+",
    "╭": "+", "╮": "+", "╯": "+", "╰": "+", "▔": "-", "▀": "-", "▬": "=",
}
"""What ``--ascii`` draws for each glyph the dashboard (and Textual's borders and footer) use; anything else
outside ASCII becomes ``?`` per cell, so columns stay aligned."""

def locale_draws_glyphs(environ: dict[str, str]) -> bool:
    """Whether the terminal's locale can show the glyphs: the first of LC_ALL, LC_CTYPE, LANG that is set names
    a UTF-8 charset. Python itself turns a plain C locale into LC_CTYPE=C.UTF-8 (PEP 538) though the terminal
    behind it is unchanged, so that value alone does not count when LANG says C or POSIX."""
    lang = environ.get("LANG", "")
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name, "")
        if not value:
            continue
        if name == "LC_CTYPE" and value == "C.UTF-8" and lang in ("", "C", "POSIX") and not environ.get("LC_ALL"):
            continue  # coerced by Python (PEP 538), not the client's choice
        charset = value.partition(".")[2].partition("@")[0].lower().replace("-", "")
        return charset in ("utf8",)
    return False
