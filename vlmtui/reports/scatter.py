"""The report's accuracy-against-speed chart: an inline SVG, one point per leaderboard line (generation
tok/s across, primary accuracy up, its 95 % interval as a bar, point area by peak memory), in the
memory chart's style."""

from __future__ import annotations

import math
from collections.abc import Sequence

from vlmtui.reports.table import escape
from vlmtui.reports.tables import Standing
from vlmtui.units import format_bytes

_W, _H = 900, 360
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 58, 190, 16, 40
_R_MIN, _R_MAX = 4.0, 18.0
"""Point radii: the smallest peak memory (or an unknown one) and the largest."""
_PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0550ae", "#bf3989", "#4d2d00")


def _radius(peak: int | None, largest: float) -> float:
    """Area proportional to peak memory, so a model twice as hungry covers twice the ink."""
    if not peak or largest <= 0:
        return _R_MIN
    return max(_R_MAX * math.sqrt(peak / largest), _R_MIN)


def _label(row: Standing) -> str:
    return f"{row.model} · {row.dataset}" if row.dataset else row.model


def accuracy_scatter_svg(rows: Sequence[Standing]) -> str:
    """Inline SVG: each scored model's primary accuracy against its generation speed, sized by peak memory."""
    drawn = [r for r in rows if r.gen_tps is not None and r.accuracy.summary.mean is not None]
    if not drawn:
        return "<p>No scored model has a measured generation speed to plot.</p>"
    left_out = len(rows) - len(drawn)
    x_max = max(r.gen_tps or 0.0 for r in drawn) * 1.1 or 1.0
    largest = float(max((r.peak_memory_bytes or 0) for r in drawn))
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def x(tps: float) -> float:
        return _PAD_L + tps / x_max * plot_w

    def y(score: float) -> float:
        return _PAD_T + plot_h - score * plot_h

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
           f'role="img" aria-label="accuracy against generation speed">']
    for i in range(6):  # y grid: accuracy 0 to 1
        v = i / 5
        svg.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eaeef2"/>')
        svg.append(f'<text x="{_PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for i in range(6):  # x labels: tok/s
        tps = x_max * i / 5
        svg.append(f'<text x="{x(tps):.1f}" y="{_H - 22}" text-anchor="middle">{tps:.0f}</text>')
    svg.append(f'<text x="{_PAD_L + plot_w / 2:.0f}" y="{_H - 4}" text-anchor="middle">generation tok/s '
               f"(mean); up: primary accuracy with its 95 % interval; point area: peak memory</text>")
    for i, row in enumerate(drawn):
        colour = _PALETTE[i % len(_PALETTE)]
        summary = row.accuracy.summary
        px, py = x(row.gen_tps or 0.0), y(summary.mean or 0.0)
        tip = (f"{_label(row)}: {row.accuracy.metric} {row.accuracy.text} (n {summary.n}), "
               f"{row.gen_tps:.1f} tok/s, peak {format_bytes(row.peak_memory_bytes)}")
        parts = [f'<g class="model-point"><title>{escape(tip)}</title>']
        if summary.ci95 is not None:
            low, high = summary.ci95
            parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y(low):.1f}" y2="{y(high):.1f}" '
                         f'stroke="{colour}" stroke-width="1.5"/>')
        hollow = "none" if not row.peak_memory_bytes else colour
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{_radius(row.peak_memory_bytes, largest):.1f}" '
                     f'fill="{hollow}" fill-opacity="0.35" stroke="{colour}" stroke-width="1.5"/></g>')
        svg.append("".join(parts))
        ly = _PAD_T + 12 + i * 16
        svg.append(f'<circle cx="{_PAD_L + plot_w + 12}" cy="{ly - 4}" r="4" fill="{colour}"/>'
                   f'<text x="{_PAD_L + plot_w + 20}" y="{ly}">{escape(_label(row))}</text>')
    svg.append(f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>')
    svg.append("</svg>")
    if left_out:
        svg.append(f'<p class="meta">{left_out} scored model line(s) without a measured speed are not drawn.</p>')
    return "".join(svg)
