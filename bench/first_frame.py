"""Shared by the first-frame benches (tui_bytes.py --first-frames, first_frame_count.py): what marks the
first frame, the bare Textual app it is measured beside, and how the two sides are summed up."""

from __future__ import annotations

import compileall
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT

FIRST_FRAME_MARK = re.compile(rb"queue (\xc2\xb7|\.) \d")
"""The queue's border title (``queue · N cases``, ``queue . N cases`` in ASCII): there once the dashboard is
drawn; the bare app shows the same text."""
BARE_ARGV = [sys.executable, str(ROOT / "bench" / "bare_tui.py")]
"""The floor: the smallest Textual app (bench/bare_tui.py)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def compile_tree(tree: str | Path) -> None:
    """Compile the measured tree's bytecode, as a user's install has it (pip compiles at install); where
    PYTHONDONTWRITEBYTECODE=1 every start would compile every module instead (0.3 G of 2.4 G instructions)."""
    compileall.compile_dir(Path(tree) / "vlmtui", quiet=1)
    compileall.compile_dir(ROOT / "bench", quiet=1)


def side_by_side(runs: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """Each side's (wall, CPU) seconds per launch, their medians, and vlmtui's ratios to the bare app."""
    result: dict[str, Any] = {}
    for name, values in runs.items():
        result[name] = {"wall_s": [round(w, 3) for w, _ in values], "cpu_s": [round(c, 3) for _, c in values],
                        "median_wall_s": round(statistics.median(w for w, _ in values), 3),
                        "median_cpu_s": round(statistics.median(c for _, c in values), 3)}
    result["ratio_wall"] = round(result["vlmtui"]["median_wall_s"] / result["bare"]["median_wall_s"], 2)
    result["ratio_cpu"] = round(result["vlmtui"]["median_cpu_s"] / result["bare"]["median_cpu_s"], 2)
    return result
