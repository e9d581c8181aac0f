"""The report's memory chart: an inline SVG of the worker's guarded memory and system use over time, with
the guard's thresholds and events marked and idle stretches (a resume the next morning) shortened; where the
log's memory lines carry telemetry, GPU % and watts on a second axis with the cases' boundaries marked."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from vlmtui.reports.model import Report
from vlmtui.reports.records import MemorySample, number
from vlmtui.reports.table import escape, format_time
from vlmtui.units import format_bytes
from vlmtui.vocab import level_look

_CHART_W, _CHART_H = 900, 320
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 78, 150, 16, 34
_MAX_POINTS = 1500
_GAP_S = 60.0
"""Longer stretches without samples (the run was down) are drawn ``_GAP_SHOWN_S`` wide."""
_GAP_SHOWN_S = 2.0


def _series(samples: Sequence[MemorySample], key: str) -> list[tuple[float, float | None]]:
    """(time, value) of each timed sample: ``guarded`` (the worker's guarded bytes) or ``system`` (system used)."""
    points: list[tuple[float, float | None]] = []
    for s in samples:
        if s.t is None:
            continue
        value = s.guarded_bytes if key == "guarded" else s.system_used
        points.append((s.t, None if value is None else float(value)))
    return points


def _telemetry_series(samples: Sequence[MemorySample], figure: str) -> list[tuple[float, float | None]]:
    """(time, value) of ``gpu_util_pct`` or ``power_w`` from each timed sample's ``telemetry`` (log-format.md)."""
    points: list[tuple[float, float | None]] = []
    for s in samples:
        telemetry = s.line.get("telemetry")
        if s.t is not None and isinstance(telemetry, dict):
            points.append((s.t, number(telemetry.get(figure))))
    return points if any(v is not None for _, v in points) else []


_GPU_COLOUR, _POWER_COLOUR = "#bc4c00", "#1a7f37"


def _telemetry_layer(report: Report, x: Callable[[float], float], t_range: tuple[float, float],
                     plot: tuple[float, float]) -> tuple[list[str], list[tuple[str, str]]]:
    """GPU % (0–100) and watts (0 to the peak) against the right-hand axis, and a dotted line where each case
    started; the SVG elements and the legend entries. Nothing when the log has no telemetry."""
    gpu = _thin(_telemetry_series(report.memory, "gpu_util_pct"))
    power = _thin(_telemetry_series(report.memory, "power_w"))
    if not gpu and not power:
        return [], []
    (t0, t1), (plot_w, plot_h) = t_range, plot
    w_max = max((v for _, v in power if v is not None), default=0.0) * 1.08 or 1.0
    right = _PAD_L + plot_w
    svg: list[str] = []
    for row in report.cases:
        if row.started_at is not None and t0 <= row.started_at <= t1:
            cx = x(row.started_at)
            svg.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{_PAD_T}" y2="{_PAD_T + plot_h}" stroke="#d0d7de" '
                       f'stroke-dasharray="1,2"><title>{escape(row.case_id)} started</title></line>')
    for i in range(1, 5):  # the second axis: GPU % and watts, labelled inside the plot's right edge
        frac = i / 4
        label = " · ".join(part for part, series in ((f"{100 * frac:.0f}%", gpu), (f"{w_max * frac:.0f} W", power))
                           if series)
        svg.append(f'<text x="{right - 4}" y="{_PAD_T + plot_h - frac * plot_h + 12:.1f}" text-anchor="end" '
                   f'style="fill:#57606a;font-size:10px">{escape(label)}</text>')
    for points, colour, top, name in ((gpu, _GPU_COLOUR, 100.0, "GPU %"), (power, _POWER_COLOUR, w_max, "GPU W")):
        for run in _runs(points, []):
            coords = " ".join(f"{x(t):.1f},{_PAD_T + plot_h - v / top * plot_h:.1f}" for t, v in run)
            svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1" stroke-opacity="0.8" '
                       f'points="{coords}"><title>{name}</title></polyline>')
    legend = [(c, n) for series, c, n in ((gpu, _GPU_COLOUR, "GPU % (right)"), (power, _POWER_COLOUR, "GPU W (right)"))
              if series]
    return svg, legend


def _thin(points: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    """At most ``_MAX_POINTS`` points, keeping each bucket's highest value (peaks must not vanish)."""
    if len(points) <= _MAX_POINTS:
        return points
    size = -(-len(points) // _MAX_POINTS)
    out: list[tuple[float, float | None]] = []
    for i in range(0, len(points), size):
        bucket = points[i:i + size]
        values = [v for _, v in bucket if v is not None]
        out.append((bucket[0][0], max(values) if values else None))
    return out


class _Timeline:
    """Sample time to chart time, with idle stretches (a resume the next morning) shortened to a sliver."""

    def __init__(self, times: Sequence[float]) -> None:
        ordered = sorted(times)
        self.gaps = [(a, b) for a, b in itertools.pairwise(ordered) if b - a > _GAP_S]
        self.t0 = ordered[0]
        end = self(ordered[-1])
        self.span = end if end > 0 else 1.0

    def __call__(self, t: float) -> float:
        """Seconds since the first sample, less the shortened part of each idle gap before ``t``."""
        removed = 0.0
        for a, b in self.gaps:
            if t >= b:
                removed += b - a - _GAP_SHOWN_S
            elif t > a:
                removed += max(t - a - _GAP_SHOWN_S, 0.0)
        return t - self.t0 - removed


def memory_chart_svg(report: Report) -> str:
    """Inline SVG: worker (guarded) memory and system used over time, thresholds, guard events marked."""
    guarded = _thin(_series(report.memory, "guarded"))
    used = _thin(_series(report.memory, "system"))
    if not guarded and not used:
        return "<p>No memory samples in this log.</p>"
    timeline = _Timeline([t for t, _ in guarded + used])
    t0, t1 = timeline.t0, max(t for t, _ in guarded + used)
    breaks = [s.started_at for s in report.sessions[1:] if s.started_at is not None]
    budget = report.budget_bytes
    lines = {k: budget * pct / 100 for k, pct in report.thresholds.items()} if budget else {}
    values = [v for _, v in guarded + used if v is not None] + list(lines.values())
    y_max = max(values or [1.0]) * 1.08 or 1.0
    plot_w = _CHART_W - _PAD_L - _PAD_R
    plot_h = _CHART_H - _PAD_T - _PAD_B

    def x(t: float) -> float:
        return _PAD_L + timeline(min(max(t, t0), t1)) / timeline.span * plot_w

    def y(v: float) -> float:
        return _PAD_T + plot_h - v / y_max * plot_h

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_CHART_W}" height="{_CHART_H}" '
           f'viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" aria-label="memory over time">']
    for i in range(5):  # y grid and labels
        v = y_max * i / 4
        svg.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eaeef2"/>')
        svg.append(f'<text x="{_PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(format_bytes(v))}</text>')
    digits = 0 if timeline.span >= 10 else 1
    for i in range(6):  # x labels: seconds of sampling since the first sample
        elapsed = timeline.span * i / 5
        svg.append(f'<text x="{_PAD_L + plot_w * i / 5:.1f}" y="{_CHART_H - 14}" text-anchor="middle">'
                   f"{elapsed:.{digits}f} s</text>")
    shortened = f"; idle gaps over {_GAP_S:g} s shortened" if timeline.gaps else ""
    svg.append(f'<text x="{_PAD_L + plot_w / 2:.0f}" y="{_CHART_H - 1}" text-anchor="middle">'
               f"time since {escape(format_time(t0))}{shortened}</text>")
    for a, b in timeline.gaps:
        gx = (x(a) + x(b)) / 2
        svg.append(f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_PAD_T}" y2="{_PAD_T + plot_h}" stroke="#8c959f" '
                   f'stroke-dasharray="1,4"><title>no samples for {b - a:.0f} s</title></line>')
    for session in report.sessions[1:]:  # a resumed session starts here
        if session.started_at is not None and t0 <= session.started_at <= t1:
            sx = x(session.started_at)
            svg.append(f'<line x1="{sx:.1f}" x2="{sx:.1f}" y1="{_PAD_T}" y2="{_PAD_T + plot_h}" stroke="#8250df" '
                       f'stroke-dasharray="2,3"><title>session {escape(session.session_id)} started '
                       f"{escape(format_time(session.started_at))}</title></line>")
    for name, value in lines.items():
        colour = level_look(name).colour
        svg.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="{colour}" stroke-dasharray="6,4"><title>{escape(name)} {report.thresholds[name]:g} % '
                   f"of the budget: {escape(format_bytes(value))}</title></line>")
        svg.append(f'<text x="{_PAD_L + plot_w + 4}" y="{y(value) + 4:.1f}" style="fill:{colour}">'
                   f"{escape(name)} {report.thresholds[name]:g}% ({escape(format_bytes(value))})</text>")
    for points, colour, label in ((used, "#8c959f", "system used"), (guarded, "#0969da", "worker (guarded)")):
        for run in _runs(points, breaks):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            if len(run) == 1:
                svg.append(f'<circle cx="{x(run[0][0]):.1f}" cy="{y(run[0][1]):.1f}" r="2" fill="{colour}"/>')
            else:
                svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}">'
                           f"<title>{escape(label)}</title></polyline>")
    telemetry, legend_extra = _telemetry_layer(report, x, (t0, t1), (plot_w, plot_h))
    svg += telemetry
    for g in report.guard_actions:
        if g.t is None:
            continue
        gx = x(min(max(g.t, t0), t1))
        colour = level_look(g.level).colour
        tip = f"{format_time(g.t)} guard {g.action} ({g.level}): {g.reason}"
        svg.append(f'<g class="guard-event"><line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_PAD_T}" '
                   f'y2="{_PAD_T + plot_h}" stroke="{colour}" stroke-width="1"/>'
                   f'<circle cx="{gx:.1f}" cy="{_PAD_T + 6}" r="4" fill="{colour}"/>'
                   f"<title>{escape(tip)}</title></g>")
    svg.append(f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>')
    legend = [("#0969da", "worker (guarded)"), ("#8c959f", "system used"), *legend_extra]
    legend_y = _PAD_T + plot_h - 16 * len(legend) + 2
    for i, (colour, label) in enumerate(legend):
        ly = legend_y + i * 16
        svg.append(f'<line x1="{_PAD_L + plot_w + 4}" x2="{_PAD_L + plot_w + 22}" y1="{ly}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/><text x="{_PAD_L + plot_w + 26}" y="{ly + 4}">{label}</text>')
    svg.append("</svg>")
    return "".join(svg)


def _runs(points: list[tuple[float, float | None]], breaks: Sequence[float]) -> list[list[tuple[float, float]]]:
    """Unbroken stretches of known values: no worker, an idle gap or a new session breaks the line."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for t, v in points:
        if current and (t - current[-1][0] > _GAP_S or any(current[-1][0] < b <= t for b in breaks)):
            runs.append(current)
            current = []
        if v is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((t, v))
    if current:
        runs.append(current)
    return runs
