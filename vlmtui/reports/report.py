"""Reports of a session log: Markdown, one self-contained HTML file, JSON and JUnit XML.

Every report is built from the same ``Report`` (``build_report``): each planned case once, at its
latest attempt. Model output and errors are untrusted text: they are cut to one line for tables and
escaped for the format they land in (Markdown, HTML, XML).
"""

from __future__ import annotations

import html
import itertools
import json
import re
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmtui.engine.session_log import SCHEMA_VERSION, LogError, SessionData, load_log
from vlmtui.reports.summary import ModelSummary, summarise
from vlmtui.text import clean, excerpt
from vlmtui.units import format_bytes

FORMATS = ("md", "html", "json", "junit")
REPORT_VERSION = 1
"""Version of the JSON report's shape (independent of the log's ``schema_version``)."""

NOT_RUN = "not run"
"""Pseudo-status of a planned case that never started (the session ended first)."""
INTERRUPTED = "interrupted"
"""Pseudo-status of a case that started and never ended (the run was killed under it)."""

_REPEAT_SUFFIX = re.compile(r"#r\d+$")
# XML 1.0 allows only these characters; model output can hold anything (random weights emit \x15).
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReportError(LogError):
    """A report that cannot be written (bad format, unwritable file); ``str()`` is one line."""


# ----------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Stat:
    """Mean and standard deviation of a metric over ``n`` samples (std is None under two)."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        """The statistic of the values that are not None."""
        samples = [float(v) for v in values if v is not None]
        mean = statistics.fmean(samples) if samples else None
        std = statistics.stdev(samples) if len(samples) > 1 else None
        return cls(mean, std, len(samples))

    def text(self, digits: int = 2) -> str:
        """``1.23 ± 0.04`` (llama-bench style), ``1.23`` for one sample, ``—`` for none."""
        if self.mean is None:
            return "—"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {"mean": self.mean, "std": self.std, "n": self.n}


@dataclass(frozen=True)
class CaseRow:
    """One planned case at its latest attempt (or ``not run`` / ``interrupted``)."""

    case_id: str
    model: str
    backend: str
    kind: str
    image: str | None
    prompt: str
    status: str
    attempts: int
    warmup: bool
    metrics: dict[str, Any]
    output: str
    error: str
    started_at: float | None
    ended_at: float | None

    @property
    def time_s(self) -> float:
        """Wall time of the latest attempt: the worker's ``total_s``, else end minus start, else 0."""
        total = self.metrics.get("total_s")
        if isinstance(total, int | float):
            return float(total)
        if self.started_at and self.ended_at:
            return max(self.ended_at - self.started_at, 0.0)
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "case_id": self.case_id, "model": self.model, "backend": self.backend, "kind": self.kind,
            "image": self.image, "prompt": self.prompt, "status": self.status, "attempts": self.attempts,
            "warmup": self.warmup, "metrics": self.metrics, "output": self.output, "error": self.error,
            "started_at": self.started_at, "ended_at": self.ended_at,
        }


@dataclass(frozen=True)
class RepeatRow:
    """One case over its repeats (``…#r0``, ``…#r1``, …; warm-ups left out), as llama-bench shows it."""

    case_id: str
    model: str
    n: int
    total_s: Stat
    ttft_s: Stat
    prompt_tps: Stat
    gen_tps: Stat
    peak_memory_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "case_id": self.case_id, "model": self.model, "n": self.n, "total_s": self.total_s.to_dict(),
            "ttft_s": self.ttft_s.to_dict(), "prompt_tps": self.prompt_tps.to_dict(),
            "gen_tps": self.gen_tps.to_dict(), "peak_memory_bytes": self.peak_memory_bytes,
        }


@dataclass(frozen=True)
class SessionRow:
    """One run recorded in the log (a resumed or rerun session appends another)."""

    session_id: str
    schema_version: int
    started_at: float | None
    info: dict[str, Any]
    ended_at: float | None
    counts: dict[str, int] | None
    stopped: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "session_id": self.session_id, "schema_version": self.schema_version,
            "started_at": self.started_at, "ended_at": self.ended_at, "counts": self.counts,
            "stopped": self.stopped, "reason": self.reason, "info": self.info,
        }


@dataclass
class Report:
    """Everything a report shows, in display order; ``build_report`` makes one from a log."""

    log_path: str
    suite: str
    sessions: list[SessionRow]
    models: list[ModelSummary]
    cases: list[CaseRow]
    repeats: list[RepeatRow]
    loads: list[dict[str, Any]]
    """The latest ``model_loaded`` or ``model_load_failed`` line per model."""
    guard: list[dict[str, Any]]
    memory: list[dict[str, Any]]
    budget_bytes: int | None
    thresholds: dict[str, float]
    """Guard thresholds in percent of the budget: ``warn``, ``cleanup``, ``abort``."""
    bad_lines: int = 0
    not_run: dict[str, int] = field(default_factory=dict)
    """Per model: planned cases without a result (``not run`` or ``interrupted``)."""

    @property
    def machine(self) -> dict[str, Any]:
        """Machine and versions of the latest session (budget and guard settings left out)."""
        info = self.sessions[-1].info if self.sessions else {}
        return {k: v for k, v in info.items() if k not in ("budget_bytes", "budget_source", "guard")}

    @property
    def started_at(self) -> float | None:
        """When the first session began."""
        return self.sessions[0].started_at if self.sessions else None

    def counts(self) -> dict[str, int]:
        """Counts by status over the non-warm-up cases."""
        counts: dict[str, int] = {}
        for row in self.cases:
            if not row.warmup:
                counts[row.status] = counts.get(row.status, 0) + 1
        return counts


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def build_report(data: SessionData) -> Report:
    """The report of a log: planned cases in plan order (then any others), each at its latest attempt."""
    latest = data.latest()
    attempts = data.attempts()
    planned: dict[str, dict[str, Any]] = {}
    for start in data.starts:
        for case in start.get("cases") or []:
            if isinstance(case, dict) and "case_id" in case:
                planned.setdefault(str(case["case_id"]), case)
    for case_id, record in latest.items():
        planned.setdefault(case_id, record)

    rows: list[CaseRow] = []
    not_run: dict[str, int] = {}
    for case_id, plan in planned.items():
        result = latest.get(case_id)
        if result is not None:
            rows.append(CaseRow(
                case_id=case_id, model=str(result.get("model", plan.get("model", ""))),
                backend=str(result.get("backend", plan.get("backend", ""))),
                kind=str(result.get("kind", plan.get("kind", ""))), image=result.get("image"),
                prompt=str(result.get("prompt", "")), status=str(result.get("status", "failed")),
                attempts=attempts.get(case_id, 1), warmup=bool(result.get("warmup")),
                metrics=dict(result.get("metrics") or {}), output=str(result.get("output") or ""),
                error=str(result.get("error") or ""), started_at=_number(result.get("started_at")),
                ended_at=_number(result.get("ended_at")),
            ))
            continue
        running = data.running.get(case_id)
        status = INTERRUPTED if running is not None else NOT_RUN
        error = ("the run ended while this case was running (killed or cut off)" if running is not None
                 else "the session ended before this case ran")
        model = str(plan.get("model", ""))
        if not plan.get("warmup"):
            not_run[model] = not_run.get(model, 0) + 1
        rows.append(CaseRow(
            case_id=case_id, model=model, backend=str(plan.get("backend", "")), kind=str(plan.get("kind", "")),
            image=plan.get("image"), prompt=str(plan.get("prompt", "")), status=status, attempts=0,
            warmup=bool(plan.get("warmup")), metrics={}, output="", error=error,
            started_at=_number(running.get("t")) if running else None, ended_at=None,
        ))

    finished = [latest[r.case_id] for r in rows if r.case_id in latest]
    models = summarise(finished)
    for model in not_run:
        if model not in {m.model for m in models}:
            backend = next((r.backend for r in rows if r.model == model), "")
            models.append(ModelSummary(model, backend))

    loads: dict[str, dict[str, Any]] = {}
    for load in data.loads:
        loads[str(load.get("model", ""))] = load

    return Report(
        log_path=str(data.path),
        suite=str(data.starts[-1].get("suite", "")) if data.starts else "",
        sessions=_sessions(data),
        models=models,
        cases=rows,
        repeats=_repeats(rows),
        loads=list(loads.values()),
        guard=list(data.guard),
        memory=list(data.memory),
        budget_bytes=_budget(data),
        thresholds=_thresholds(data),
        bad_lines=data.bad_lines,
        not_run=not_run,
    )


def _sessions(data: SessionData) -> list[SessionRow]:
    """Each session_start with the session_end that follows it (if any)."""
    rows: list[SessionRow] = []
    ends = sorted(data.ends, key=lambda e: float(e.get("t") or 0))
    starts = sorted(data.starts, key=lambda s: float(s.get("t") or 0))
    for i, start in enumerate(starts):
        t0 = _number(start.get("t"))
        t1 = _number(starts[i + 1].get("t")) if i + 1 < len(starts) else None
        end = next((e for e in ends if (t0 is None or float(e.get("t") or 0) >= t0)
                    and (t1 is None or float(e.get("t") or 0) < t1)), None)
        info = start.get("info")
        rows.append(SessionRow(
            session_id=str(start.get("session_id", "")),
            schema_version=int(start.get("schema_version", 0)),
            started_at=t0,
            info=dict(info) if isinstance(info, dict) else {},
            ended_at=_number(end.get("t")) if end else None,
            counts=dict(end.get("counts") or {}) if end else None,
            stopped=bool(end.get("stopped")) if end else False,
            reason=str(end.get("reason") or "") if end else "",
        ))
    return rows


def _budget(data: SessionData) -> int | None:
    """The budget the guard last worked with: the latest memory sample's, else the last session's."""
    for sample in reversed(data.memory):
        if isinstance(sample.get("budget_bytes"), int):
            return int(sample["budget_bytes"])
    for start in reversed(data.starts):
        info = start.get("info") or {}
        if isinstance(info.get("budget_bytes"), int):
            return int(info["budget_bytes"])
    return None


def _thresholds(data: SessionData) -> dict[str, float]:
    for start in reversed(data.starts):
        guard = (start.get("info") or {}).get("guard") or {}
        found = {k: float(guard[k]) for k in ("warn", "cleanup", "abort") if _number(guard.get(k)) is not None}
        if found:
            return found
    return {}


def _repeats(rows: Sequence[CaseRow]) -> list[RepeatRow]:
    """Repeated cases grouped under their base id, when the suite has ``repeat`` > 1."""
    groups: dict[str, list[CaseRow]] = {}
    for row in rows:
        if row.warmup or not _REPEAT_SUFFIX.search(row.case_id):
            continue
        groups.setdefault(_REPEAT_SUFFIX.sub("", row.case_id), []).append(row)
    out = []
    for base, members in groups.items():
        ran = [r for r in members if r.status in ("passed", "failed") and r.metrics.get("gen_tokens")]
        peaks = [int(r.metrics["peak_memory_bytes"]) for r in ran if r.metrics.get("peak_memory_bytes")]
        out.append(RepeatRow(
            case_id=base, model=members[0].model, n=len(ran),
            total_s=Stat.of(_number(r.metrics.get("total_s")) for r in ran),
            ttft_s=Stat.of(_number(r.metrics.get("ttft_s")) for r in ran),
            prompt_tps=Stat.of(_number(r.metrics.get("prompt_tps")) for r in ran),
            gen_tps=Stat.of(_number(r.metrics.get("gen_tps")) for r in ran),
            peak_memory_bytes=max(peaks) if peaks else None,
        ))
    return out


# ----------------------------------------------------------------------------- text helpers


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_cell(text: str, limit: int = 80) -> str:
    """One line of untrusted text for a Markdown table cell: no HTML, no markup, no cell breaks."""
    flat = excerpt(text, limit)
    flat = _MD_SPECIAL.sub(r"\\\1", flat)
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(value: Any, digits: int = 2) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.{digits}f}"


def _int(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{int(number)}"


def format_time(t: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS`` (``—`` for unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "—"


def _mean_std(values: list[float], digits: int) -> str:
    return Stat.of(values).text(digits)


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no cases"


def _versions_text(load: Mapping[str, Any]) -> str:
    versions = load.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else ""


def _guard_rows(report: Report) -> list[dict[str, Any]]:
    return [g for g in report.guard if g.get("action") != "none"]


def _session_line(session: SessionRow) -> str:
    info = session.info
    end = ("no session_end: the run was killed or cut off" if session.counts is None else
           f"{'stopped' if session.stopped else 'finished'} {format_time(session.ended_at)}: "
           f"{_counts_text(session.counts)}" + (f" ({session.reason})" if session.reason else ""))
    return (f"session {session.session_id} (schema {session.schema_version}) started {format_time(session.started_at)} "
            f"on {info.get('host', '?')} — {end}")


# ----------------------------------------------------------------------------- Markdown

_SUMMARY_COLUMNS = ("passed", "failed", "crashed", "aborted", "skipped")


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    out: list[str] = [f"# vlmtui report: {md_cell(report.suite, 200)}", ""]
    counts = report.counts()
    out.append(f"Log `{clean(report.log_path)}` · {len(report.sessions)} session(s) · "
               f"{sum(counts.values())} cases: {_counts_text(counts)}")
    if report.bad_lines:
        out.append("")
        out.append(f"**{report.bad_lines} unreadable line(s) in the log were skipped.**")
    out += ["", "## Per-model summary", ""]
    has_not_run = bool(report.not_run)
    header = ["model", "backend", *_SUMMARY_COLUMNS, *(["not run"] if has_not_run else []),
              "total s (mean ± std)", "gen tok/s (mean ± std)", "peak memory"]
    out += [_md_row(header), _md_row(["---", "---", *["--:"] * (len(header) - 2)])]
    for s in report.models:
        out.append(_md_row([
            md_cell(s.model), md_cell(s.backend), *(str(s.counts.get(k, 0)) for k in _SUMMARY_COLUMNS),
            *([str(report.not_run.get(s.model, 0))] if has_not_run else []),
            _mean_std(s.total_s, 2), _mean_std(s.gen_tps, 1), format_bytes(s.peak_memory_bytes),
        ]))
    if report.repeats:
        out += ["", "## Repeats", "", "Mean ± standard deviation over each case's repeats (warm-ups left out).", ""]
        header = ["case", "model", "n", "total s", "TTFT s", "prompt tok/s", "gen tok/s", "peak memory"]
        out += [_md_row(header), _md_row(["---", "---", *["--:"] * 6])]
        for r in report.repeats:
            out.append(_md_row([md_cell(r.case_id, 120), md_cell(r.model), str(r.n), r.total_s.text(2),
                                r.ttft_s.text(3), r.prompt_tps.text(1), r.gen_tps.text(1),
                                format_bytes(r.peak_memory_bytes)]))
    out += ["", "## Cases", ""]
    header = ["case", "status", "attempts", "load s", "TTFT s", "prompt tok", "gen tok", "gen tok/s", "total s",
              "peak memory", "output", "error"]
    out += [_md_row(header), _md_row(["---", "---", *["--:"] * 8, "---", "---"])]
    for row in report.cases:
        m = row.metrics
        name = md_cell(row.case_id, 120) + (" (warm-up)" if row.warmup else "")
        out.append(_md_row([
            name, row.status, str(row.attempts), _fmt(m.get("load_s")), _fmt(m.get("ttft_s"), 3),
            _int(m.get("prompt_tokens")), _int(m.get("gen_tokens")), _fmt(m.get("gen_tps"), 1),
            _fmt(m.get("total_s")), format_bytes(_number(m.get("peak_memory_bytes"))),
            md_cell(row.output, 60), md_cell(row.error, 120),
        ]))
    out += ["", "## Guard events", ""]
    guard = _guard_rows(report)
    if not guard:
        out.append("None: memory stayed under the warn threshold.")
    else:
        out += [_md_row(["time", "level", "action", "case", "reason"]), _md_row(["---"] * 5)]
        for g in guard:
            out.append(_md_row([format_time(_number(g.get("t"))), md_cell(str(g.get("level", ""))),
                                md_cell(str(g.get("action", ""))), md_cell(str(g.get("case_id") or "—"), 120),
                                md_cell(str(g.get("reason", "")), 200)]))
    out += ["", "## Machine and versions", ""]
    for key, value in report.machine.items():
        out.append(f"- {md_cell(str(key))}: {md_cell(str(value), 200)}")
    out.append(f"- budget: {format_bytes(report.budget_bytes)}"
               + (f" ({md_cell(str(report.sessions[-1].info.get('budget_source', '')))})" if report.sessions else "")
               + "; " + " · ".join(f"{k} {v:g} %" for k, v in report.thresholds.items()))
    for session in report.sessions:
        out.append(f"- {md_cell(_session_line(session), 300)}")
    if report.loads:
        out += ["", _md_row(["model", "device", "dtype", "load s", "versions", "notes"]), _md_row(["---"] * 6)]
        for load in report.loads:
            if load.get("event") == "model_load_failed":
                out.append(_md_row([md_cell(str(load.get("model", ""))), "—", "—", "—",
                                    "load failed: " + md_cell(str(load.get("error", "")), 200), ""]))
                continue
            out.append(_md_row([
                md_cell(str(load.get("model", ""))), md_cell(str(load.get("device", ""))),
                md_cell(str(load.get("dtype", ""))), _fmt(load.get("load_s")), md_cell(_versions_text(load), 200),
                md_cell("; ".join(str(n) for n in load.get("notes") or []), 200),
            ]))
    return "\n".join(out) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;color:#1f2328}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.out{font-family:ui-monospace,Menlo,monospace;font-size:12px;max-width:30em;overflow-wrap:anywhere}
.passed{color:#1a7f37}.failed{color:#cf222e}.crashed{color:#a40e26;font-weight:bold}.aborted{color:#9a6700}
.skipped,.not-run{color:#6e7781}.interrupted{color:#a40e26}.meta{color:#57606a}
svg{background:#fff;border:1px solid #d0d7de}svg text{font:11px sans-serif;fill:#57606a}
"""


def _e(text: Any) -> str:
    return html.escape(clean(str(text)), quote=True)


def _status_class(status: str) -> str:
    return re.sub(r"[^a-z]+", "-", status.lower())


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG; no scripts, no external assets)."""
    counts = report.counts()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>vlmtui report: {_e(report.suite)}</title><style>{_CSS}</style></head><body>",
        f"<h1>vlmtui report: {_e(report.suite)}</h1>",
        f'<p class="meta">Log <code>{_e(report.log_path)}</code> · {len(report.sessions)} session(s) · '
        f"{sum(counts.values())} cases: {_e(_counts_text(counts))}</p>",
    ]
    if report.bad_lines:
        parts.append(f"<p><strong>{report.bad_lines} unreadable line(s) in the log were skipped.</strong></p>")
    has_not_run = bool(report.not_run)
    parts.append("<h2>Per-model summary</h2><table><tr>" + "".join(
        f"<th>{_e(h)}</th>" for h in ["model", "backend", *_SUMMARY_COLUMNS, *(["not run"] if has_not_run else []),
                                      "total s (mean ± std)", "gen tok/s (mean ± std)", "peak memory"]) + "</tr>")
    for s in report.models:
        cells = [f"<td>{_e(s.model)}</td><td>{_e(s.backend)}</td>"]
        cells += [f'<td class="n">{s.counts.get(k, 0)}</td>' for k in _SUMMARY_COLUMNS]
        if has_not_run:
            cells.append(f'<td class="n">{report.not_run.get(s.model, 0)}</td>')
        cells += [f'<td class="n">{_e(v)}</td>' for v in (_mean_std(s.total_s, 2), _mean_std(s.gen_tps, 1),
                                                          format_bytes(s.peak_memory_bytes))]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    if report.repeats:
        parts.append("<h2>Repeats</h2><p class=\"meta\">Mean ± standard deviation over each case's repeats "
                     "(warm-ups left out).</p><table><tr>" + "".join(
                         f"<th>{h}</th>" for h in ("case", "model", "n", "total s", "TTFT s", "prompt tok/s",
                                                   "gen tok/s", "peak memory")) + "</tr>")
        for r in report.repeats:
            parts.append(
                f"<tr><td>{_e(r.case_id)}</td><td>{_e(r.model)}</td>" + "".join(
                    f'<td class="n">{_e(v)}</td>' for v in (r.n, r.total_s.text(2), r.ttft_s.text(3),
                                                            r.prompt_tps.text(1), r.gen_tps.text(1),
                                                            format_bytes(r.peak_memory_bytes))) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Memory over time</h2>")
    parts.append(memory_chart_svg(report))
    parts.append("<h2>Cases</h2><table><tr>" + "".join(
        f"<th>{h}</th>" for h in ("case", "status", "attempts", "load s", "TTFT s", "prompt tok", "gen tok",
                                  "gen tok/s", "total s", "peak memory", "output", "error")) + "</tr>")
    for row in report.cases:
        m = row.metrics
        warm = ' <span class="meta">(warm-up)</span>' if row.warmup else ""
        numbers = (row.attempts, _fmt(m.get("load_s")), _fmt(m.get("ttft_s"), 3), _int(m.get("prompt_tokens")),
                   _int(m.get("gen_tokens")), _fmt(m.get("gen_tps"), 1), _fmt(m.get("total_s")),
                   format_bytes(_number(m.get("peak_memory_bytes"))))
        parts.append(
            f"<tr><td>{_e(row.case_id)}{warm}</td><td class=\"{_status_class(row.status)}\">{_e(row.status)}</td>"
            + "".join(f'<td class="n">{_e(v)}</td>' for v in numbers)
            + f'<td class="out" title="{_e(excerpt(row.output, 2000))}">{_e(excerpt(row.output, 120))}</td>'
            + f'<td class="out">{_e(excerpt(row.error, 300))}</td></tr>')
    parts.append("</table><h2>Guard events</h2>")
    guard = _guard_rows(report)
    if not guard:
        parts.append("<p>None: memory stayed under the warn threshold.</p>")
    else:
        parts.append("<table><tr><th>time</th><th>level</th><th>action</th><th>case</th><th>reason</th></tr>")
        for g in guard:
            parts.append(
                f"<tr><td>{_e(format_time(_number(g.get('t'))))}</td><td>{_e(g.get('level', ''))}</td>"
                f"<td>{_e(g.get('action', ''))}</td><td>{_e(g.get('case_id') or '—')}</td>"
                f"<td>{_e(g.get('reason', ''))}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Machine and versions</h2><ul>")
    for key, value in report.machine.items():
        parts.append(f"<li>{_e(key)}: {_e(value)}</li>")
    parts.append(f"<li>budget: {_e(format_bytes(report.budget_bytes))}; "
                 + _e(" · ".join(f"{k} {v:g} %" for k, v in report.thresholds.items())) + "</li>")
    for session in report.sessions:
        parts.append(f"<li>{_e(_session_line(session))}</li>")
    parts.append("</ul>")
    if report.loads:
        parts.append("<table><tr><th>model</th><th>device</th><th>dtype</th><th>load s</th><th>versions</th>"
                     "<th>notes</th></tr>")
        for load in report.loads:
            if load.get("event") == "model_load_failed":
                parts.append(f"<tr><td>{_e(load.get('model', ''))}</td><td colspan=\"5\" class=\"failed\">"
                             f"load failed: {_e(excerpt(str(load.get('error', '')), 300))}</td></tr>")
                continue
            parts.append(
                f"<tr><td>{_e(load.get('model', ''))}</td><td>{_e(load.get('device', ''))}</td>"
                f"<td>{_e(load.get('dtype', ''))}</td><td class=\"n\">{_e(_fmt(load.get('load_s')))}</td>"
                f"<td>{_e(_versions_text(load))}</td>"
                f"<td>{_e('; '.join(str(n) for n in load.get('notes') or []))}</td></tr>")
        parts.append("</table>")
    parts.append(f'<p class="meta">Written by vlmtui from log schema {SCHEMA_VERSION}.</p></body></html>')
    return "\n".join(parts) + "\n"


_CHART_W, _CHART_H = 900, 320
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 78, 150, 16, 34
_MAX_POINTS = 1500
_GAP_S = 60.0
"""Longer stretches without samples (the run was down) are drawn ``_GAP_SHOWN_S`` wide."""
_GAP_SHOWN_S = 2.0
_THRESHOLD_COLOURS = {"warn": "#bf8700", "cleanup": "#d1242f", "abort": "#82071e"}


def _series(samples: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float | None]]:
    points: list[tuple[float, float | None]] = []
    for s in samples:
        t = _number(s.get("t"))
        if t is None:
            continue
        if key == "system_used":
            system = s.get("system") or {}
            value = _number(system.get("used")) if isinstance(system, dict) else None
        else:
            value = _number(s.get(key))
        points.append((t, value))
    return points


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
    guarded = _thin(_series(report.memory, "guarded_bytes"))
    used = _thin(_series(report.memory, "system_used"))
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
        svg.append(f'<text x="{_PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_e(format_bytes(v))}</text>')
    digits = 0 if timeline.span >= 10 else 1
    for i in range(6):  # x labels: seconds of sampling since the first sample
        elapsed = timeline.span * i / 5
        svg.append(f'<text x="{_PAD_L + plot_w * i / 5:.1f}" y="{_CHART_H - 14}" text-anchor="middle">'
                   f"{elapsed:.{digits}f} s</text>")
    shortened = f"; idle gaps over {_GAP_S:g} s shortened" if timeline.gaps else ""
    svg.append(f'<text x="{_PAD_L + plot_w / 2:.0f}" y="{_CHART_H - 1}" text-anchor="middle">'
               f"time since {_e(format_time(t0))}{shortened}</text>")
    for a, b in timeline.gaps:
        gx = (x(a) + x(b)) / 2
        svg.append(f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_PAD_T}" y2="{_PAD_T + plot_h}" stroke="#8c959f" '
                   f'stroke-dasharray="1,4"><title>no samples for {b - a:.0f} s</title></line>')
    for session in report.sessions[1:]:  # a resumed session starts here
        if session.started_at is not None and t0 <= session.started_at <= t1:
            sx = x(session.started_at)
            svg.append(f'<line x1="{sx:.1f}" x2="{sx:.1f}" y1="{_PAD_T}" y2="{_PAD_T + plot_h}" stroke="#8250df" '
                       f'stroke-dasharray="2,3"><title>session {_e(session.session_id)} started '
                       f"{_e(format_time(session.started_at))}</title></line>")
    for name, value in lines.items():
        colour = _THRESHOLD_COLOURS.get(name, "#57606a")
        svg.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="{colour}" stroke-dasharray="6,4"><title>{_e(name)} {report.thresholds[name]:g} % '
                   f"of the budget: {_e(format_bytes(value))}</title></line>")
        svg.append(f'<text x="{_PAD_L + plot_w + 4}" y="{y(value) + 4:.1f}" style="fill:{colour}">'
                   f"{_e(name)} {report.thresholds[name]:g}% ({_e(format_bytes(value))})</text>")
    for points, colour, label in ((used, "#8c959f", "system used"), (guarded, "#0969da", "worker (guarded)")):
        for run in _runs(points, breaks):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            if len(run) == 1:
                svg.append(f'<circle cx="{x(run[0][0]):.1f}" cy="{y(run[0][1]):.1f}" r="2" fill="{colour}"/>')
            else:
                svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}">'
                           f"<title>{_e(label)}</title></polyline>")
    for g in _guard_rows(report):
        gt = _number(g.get("t"))
        if gt is None:
            continue
        gx = x(min(max(gt, t0), t1))
        colour = _THRESHOLD_COLOURS.get(str(g.get("level")), "#1a7f37")
        tip = f"{format_time(gt)} guard {g.get('action', '')} ({g.get('level', '')}): {g.get('reason', '')}"
        svg.append(f'<g class="guard-event"><line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_PAD_T}" '
                   f'y2="{_PAD_T + plot_h}" stroke="{colour}" stroke-width="1"/>'
                   f'<circle cx="{gx:.1f}" cy="{_PAD_T + 6}" r="4" fill="{colour}"/>'
                   f"<title>{_e(tip)}</title></g>")
    svg.append(f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>')
    legend_y = _PAD_T + plot_h - 30
    for i, (colour, label) in enumerate((("#0969da", "worker (guarded)"), ("#8c959f", "system used"))):
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


# ----------------------------------------------------------------------------- JSON


def render_json(report: Report) -> str:
    """The report as JSON: sessions, machine, per-model summary, repeats, cases, guard events."""
    doc = {
        "report_version": REPORT_VERSION,
        "log": report.log_path,
        "suite": report.suite,
        "counts": report.counts(),
        "sessions": [s.to_dict() for s in report.sessions],
        "machine": report.machine,
        "budget": {"bytes": report.budget_bytes, "thresholds_pct": report.thresholds},
        "models": [{
            "model": s.model, "backend": s.backend, "counts": s.counts,
            "not_run": report.not_run.get(s.model, 0),
            "total_s": Stat.of(s.total_s).to_dict(), "gen_tps": Stat.of(s.gen_tps).to_dict(),
            "peak_memory_bytes": s.peak_memory_bytes,
        } for s in report.models],
        "repeats": [r.to_dict() for r in report.repeats],
        "cases": [c.to_dict() for c in report.cases],
        "loads": report.loads,
        "guard": report.guard,
        "bad_lines": report.bad_lines,
    }
    return json.dumps(_clean_tree(doc), indent=2, ensure_ascii=False, default=str) + "\n"


def _clean_tree(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): _clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_tree(v) for v in value]
    return value


# ----------------------------------------------------------------------------- JUnit XML


def _x(text: Any) -> str:
    """Text XML 1.0 can hold (ElementTree escapes markup but not forbidden control characters)."""
    return _XML_INVALID.sub("\ufffd", clean(str(text)))


def render_junit(report: Report) -> str:
    """JUnit XML: one <testsuite> per model, each non-warm-up case once at its latest attempt.

    passed → a plain <testcase>; failed → <failure>; crashed, aborted and interrupted → <error>;
    skipped and not run → <skipped>.
    """
    root = ET.Element("testsuites", name=_x(f"vlmtui {report.suite}"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    by_model: dict[str, list[CaseRow]] = {}
    for row in report.cases:
        if not row.warmup:
            by_model.setdefault(row.model, []).append(row)
    host = str(report.machine.get("host", ""))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(report.started_at)) if report.started_at else ""
    loads = {str(load.get("model", "")): load for load in report.loads}
    for model, rows in by_model.items():
        suite = ET.SubElement(root, "testsuite", name=_x(model), hostname=_x(host), timestamp=stamp)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="backend", value=_x(rows[0].backend))
        load = loads.get(model) or {}
        for key in ("device", "dtype"):
            if load.get(key):
                ET.SubElement(props, "property", name=key, value=_x(load[key]))
        for name, version in (load.get("versions") or {}).items():
            ET.SubElement(props, "property", name=_x(f"version.{name}"), value=_x(version))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for row in rows:
            counts["tests"] += 1
            suite_time += row.time_s
            case = ET.SubElement(suite, "testcase", classname=_x(model), name=_x(row.case_id),
                                 time=f"{row.time_s:.3f}")
            message = _x(excerpt(row.error, 500)) or row.status
            if row.status == "failed":
                counts["failures"] += 1
                child = ET.SubElement(case, "failure", message=message, type="failed")
                child.text = _x(_failure_text(row))
            elif row.status in ("crashed", "aborted", INTERRUPTED):
                counts["errors"] += 1
                child = ET.SubElement(case, "error", message=message, type=row.status.replace(" ", "-"))
                child.text = _x(_failure_text(row))
            elif row.status in ("skipped", NOT_RUN):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=message)
            elif row.status != "passed":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=message, type=_x(row.status))
            if row.output:
                ET.SubElement(case, "system-out").text = _x(row.output)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _failure_text(row: CaseRow) -> str:
    lines = [f"{row.status} (attempt {row.attempts}): {row.error}"]
    if row.output:
        lines.append(f"output: {row.output}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- entry point

_RENDERERS = {"md": render_markdown, "html": render_html, "json": render_json, "junit": render_junit}


def render_report(data: SessionData, fmt: str) -> str:
    """The report of a loaded log in ``fmt`` (md, html, json or junit)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ReportError(f"unknown report format {fmt!r} (use one of {', '.join(FORMATS)})")
    return renderer(build_report(data))


def write_report(log: str | Path, fmt: str, output: str | Path | None = None) -> int:
    """Read the log, write the report to ``output`` (or stdout); returns the exit code (0)."""
    text = render_report(load_log(log), fmt)
    if output is None or str(output) == "-":
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            sys.stdout.flush()
            buffer.write(text.encode("utf-8"))
            buffer.flush()
        else:
            sys.stdout.write(text)
        return 0
    path = Path(output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    print(f"report: {path}", file=sys.stderr)
    return 0
