"""macOS thermal state without sudo: ``pmset -g therm`` (CPU speed limit, thermal and performance warnings).

Parent side, standard library only. ``pmset`` runs as a child process through the same injected runner as
system.py's sysctl probes (argv, no shell, a short timeout), so tests feed it recorded outputs.

What pmset prints: an Intel Mac under a power notification lists ``CPU_Speed_Limit = N`` (N < 100 while
the OS holds the CPU back); an Apple silicon Mac at rest prints only notes that nothing has been recorded
("No thermal warning level…", "No performance warning level…", "No CPU power status…"), which is the
nominal state: no limit in force, read as 100 %.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from vlmtui.memory.system import SysctlRunner, run_sysctl
from vlmtui.memory.telemetry_sample import NA_MACOS_ONLY, TelemetrySample, unavailable

PMSET_ARGV = ("pmset", "-g", "therm")
_SPEED_LIMIT = re.compile(r"CPU_Speed_Limit\s*=\s*(\d+)")
_WARNING_LEVEL = re.compile(r"(thermal|performance) warning level\s*(?:[:=]|set to|is)\s*(\d+)", re.IGNORECASE)
_NOTHING_RECORDED = re.compile(r"No (thermal warning level|performance warning level|CPU power status) has been "
                               r"recorded", re.IGNORECASE)


def parse_pmset_therm(text: str, *, t: float | None = None) -> TelemetrySample | None:
    """``pmset -g therm``'s output as a partial sample (speed limit, throttled, reasons); ``None`` if not understood."""
    stamp = time.time() if t is None else t
    limit_match = _SPEED_LIMIT.search(text)
    warnings = [(kind.lower(), int(level)) for kind, level in _WARNING_LEVEL.findall(text)]
    nothing = {m.lower() for m in _NOTHING_RECORDED.findall(text)}
    if limit_match is None and not warnings and not nothing:
        return None
    limit: int | None = int(limit_match.group(1)) if limit_match else None
    if limit is None and "cpu power status" in nothing:
        limit = 100  # no CPU power notification recorded: no speed limit in force
    reasons = [f"{kind}_warning" for kind, level in warnings if level > 0]
    if limit is not None and limit < 100:
        reasons.insert(0, "cpu_speed_limit")
    sources = [("throttled", "pmset")]
    missing: list[tuple[str, str]] = []
    if limit is not None:
        sources.insert(0, ("cpu_speed_limit_pct", "pmset"))
    else:
        missing.append(("cpu_speed_limit_pct", "n/a (pmset reports no CPU speed limit)"))
    return TelemetrySample(
        t=stamp,
        cpu_speed_limit_pct=limit,
        throttled=bool(reasons),  # a speed limit, a warning or an all-clear note was read
        throttle_reasons=tuple(reasons),
        sources=tuple(sources),
        unavailable=tuple(missing),
    )


def probe_thermal(run: SysctlRunner | None = None, *, platform: str = sys.platform) -> TelemetrySample:
    """The thermal state now: a partial sample, or one that says why there is none (off macOS, pmset failing)."""
    figures = ("cpu_speed_limit_pct", "throttled")
    if platform != "darwin":
        return unavailable(NA_MACOS_ONLY, ("cpu_speed_limit_pct",))
    try:
        out = (run or run_sysctl)(list(PMSET_ARGV))
    except (OSError, subprocess.SubprocessError) as exc:
        return unavailable(f"n/a (pmset: {type(exc).__name__})", figures)
    parsed = parse_pmset_therm(out)
    return parsed if parsed is not None else unavailable("n/a (pmset output not understood)", figures)
