"""Reports rendered from hand-built session logs: every format, hostile model output, old schemas."""

from __future__ import annotations

import json
import re
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from vlmtui.cli import main
from vlmtui.engine.session_log import SessionLog, load_log
from vlmtui.reports.model import build_report
from vlmtui.reports.report import render_report, write_report
from vlmtui.reports.summary import Stat
from vlmtui.reports.table import md_cell
from vlmtui.text import excerpt

GiB = 1024**3
T0 = 1_700_000_000.0
HOSTILE = "<script>alert(1)</script> | pipe *bold* [x](http://e.vil)\x15\x00\nsecond line \ud800 end"


class LogBuilder:
    """Writes a session log line by line, as the SessionLog would, with times relative to ``T0``."""

    def __init__(self, path: Path, session_id: str = "s1") -> None:
        self.path = path
        self.session_id = session_id
        self.lines: list[str] = []

    def raw(self, record: dict[str, Any]) -> LogBuilder:
        self.lines.append(json.dumps(record))  # ensure_ascii: a lone surrogate survives as \ud800
        return self

    def event(self, event: str, t: float, **fields: Any) -> LogBuilder:
        return self.raw({"event": event, "t": T0 + t, "session_id": self.session_id, **fields})

    def start(self, cases: list[dict[str, Any]], t: float = 0.0, budget: int = 8 * GiB) -> LogBuilder:
        info = {"vlmtui": "0.1.0", "python": "3.11.7", "platform": "macOS-15.1-arm64", "machine": "arm64",
                "host": "mac-studio", "pid": 42, "budget_bytes": budget, "budget_source": "Metal working set",
                "guard": {"warn": 75.0, "cleanup": 85.0, "abort": 95.0, "on_abort": "next-case", "sample_ms": 250}}
        return self.event("session_start", t, schema_version=1, suite="unit", suite_path="/x/suite.toml",
                          info=info, cases=cases)

    def case(self, case_id: str, status: str, t: float, *, attempt: int = 1, output: str = "", error: str = "",
             metrics: dict[str, Any] | None = None, warmup: bool = False, end: bool = True) -> LogBuilder:
        model = case_id.split("/")[0]
        self.event("case_start", t, case_id=case_id, attempt=attempt, model=model)
        if end:
            self.event("case_end", t + 1, case_id=case_id, attempt=attempt, model=model, backend="mlx-vlm",
                       image=None if "/text/" in case_id else "/img/a.png", prompt="Describe.",
                       kind="text" if "/text/" in case_id else "image", status=status, error=error, output=output,
                       metrics=metrics or {}, started_at=T0 + t, ended_at=T0 + t + 1, warmup=warmup, detail="")
        return self

    def write(self, *, torn: str = "") -> Path:
        self.path.write_text("\n".join(self.lines) + "\n" + torn, encoding="utf-8")
        return self.path


def planned(case_id: str, *, warmup: bool = False) -> dict[str, Any]:
    model = case_id.split("/")[0]
    return {"case_id": case_id, "model": model, "backend": "mlx-vlm", "image": None, "prompt": "Describe.",
            "kind": "text" if "/text/" in case_id else "image", "warmup": warmup, "skip_reason": None,
            "trust_remote_code": False}


def metrics(total_s: float, gen_tps: float, peak: int = GiB, gen_tokens: int = 16) -> dict[str, Any]:
    return {"load_s": 2.5, "ttft_s": 0.12, "prompt_tokens": 40, "gen_tokens": gen_tokens, "prompt_tps": 300.0,
            "gen_tps": gen_tps, "total_s": total_s, "peak_memory_bytes": peak}


CASES = [
    "smol/a.png/p0", "smol/b.png/p0", "smol/text/t0", "big/a.png/p0", "big/text/t0",
    "rep/a.png/p0#w0", "rep/a.png/p0#r0", "rep/a.png/p0#r1", "rep/a.png/p0#r2",
    "late/a.png/p0", "late/text/t0",
]


@pytest.fixture
def session_log(tmp_path: Path) -> Path:
    """One interrupted session: every status, a rerun, repeats with a warm-up, guard events, memory."""
    b = LogBuilder(tmp_path / "session.jsonl")
    b.start([planned(c, warmup="#w" in c) for c in CASES])
    b.event("model_load", 0.1, model="smol", backend="mlx-vlm", path="mlx-community/SmolVLM", trust_remote_code=False)
    b.event("model_loaded", 2.5, model="smol", load_s=2.4, device="gpu", dtype="bfloat16",
            versions={"mlx": "0.21.0", "mlx-vlm": "0.1.0"}, notes=["image splitting off"])
    for i in range(12):
        guarded = None if i in (0, 6) else int((1 + i * 0.6) * GiB)
        b.event("memory", i, system={"total": 16 * GiB, "available": 8 * GiB, "used": int((4 + i * 0.3) * GiB)},
                worker_rss=guarded, framework=None, guarded_bytes=guarded, guarded_source="mlx",
                budget_bytes=8 * GiB, level="ok", pressure=None)
    b.case("smol/a.png/p0", "passed", 3, output=HOSTILE, metrics=metrics(1.5, 20.0))
    b.case("smol/b.png/p0", "crashed", 4, error="the worker was killed by SIGABRT: Metal ran out of GPU memory")
    b.case("smol/text/t0", "crashed", 5, error="the worker was killed by SIGKILL",
           metrics={"returncode": -9, "last_memory": {"guarded_bytes": 7 * GiB}})
    b.case("smol/b.png/p0", "failed", 6, attempt=2, output="a dog on a bike",
           error="expected the output to contain 'cat'", metrics=metrics(0.9, 22.0))
    for t, level, previous, action in ((7.0, "warn", "ok", "warn"), (7.5, "cleanup", "warn", "cleanup"),
                                       (7.6, "cleanup", "cleanup", "cleaned"), (8.0, "abort", "cleanup", "abort"),
                                       (9.0, "ok", "abort", "recover")):
        b.event("guard", t, level=level, previous=previous, action=action, reason=f"{action} <b>now</b>",
                case_id="big/a.png/p0", reading={"guarded_bytes": 7 * GiB}, freed_bytes=None)
    b.case("big/a.png/p0", "aborted", 7, error="memory guard: worker memory 7.7 GiB ≥ abort 95% of 8.0 GiB",
           output="partial")
    b.case("big/text/t0", "skipped", 8.5, error="big is vision-only: a text-only prompt does not test it")
    b.case("rep/a.png/p0#w0", "passed", 9, output="warm", metrics=metrics(3.0, 5.0, peak=3 * GiB), warmup=True)
    for r, (total, tps) in enumerate(((1.0, 10.0), (1.2, 12.0), (1.4, 14.0))):
        b.case(f"rep/a.png/p0#r{r}", "passed", 10 + r, output="fine", metrics=metrics(total, tps, peak=2 * GiB))
    b.case("late/a.png/p0", "", 14, end=False)
    return b.write(torn='{"event": "memory", "t": 1700000015.0, "sys')


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, splitting only on unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_build_report_has_each_planned_case_once_at_its_latest_attempt(session_log: Path) -> None:
    report = build_report(load_log(session_log))
    assert [r.case_id for r in report.cases] == CASES
    rows = {r.case_id: r for r in report.cases}
    assert rows["smol/b.png/p0"].status == "failed" and rows["smol/b.png/p0"].attempts == 2
    assert rows["late/a.png/p0"].status == "interrupted"
    assert rows["late/text/t0"].status == "not run"
    assert report.counts() == {"passed": 4, "failed": 1, "crashed": 1, "aborted": 1, "skipped": 1,
                               "interrupted": 1, "not run": 1}
    assert report.bad_lines == 1, "the torn last line is skipped"
    assert report.not_run == {"late": 2}
    smol = next(m for m in report.models if m.model == "smol")
    assert smol.counts["passed"] == 1 and smol.counts["failed"] == 1 and smol.counts["crashed"] == 1
    rep = next(m for m in report.models if m.model == "rep")
    assert rep.cases == 3, "the warm-up is not counted"
    assert report.budget_bytes == 8 * GiB and report.thresholds == {"warn": 75.0, "cleanup": 85.0, "abort": 95.0}


def test_markdown_summary_repeats_cases_guard_and_machine(session_log: Path) -> None:
    md = render_report(load_log(session_log), "md")
    for heading in ("# vlmtui report: unit", "## Per-model summary", "## Repeats", "## Cases", "## Guard events",
                    "## Machine and versions"):
        assert heading in md
    repeat_row = next(line for line in md.splitlines() if line.startswith("| rep/a.png/p0 |"))
    assert "1.20 ± 0.20" in repeat_row and "12.0 ± 2.0" in repeat_row and "| 3 |" in repeat_row
    assert "rep/a.png/p0#w0 (warm-up)" in md
    assert "mlx 0.21.0, mlx-vlm 0.1.0" in md and "host: mac-studio" in md
    assert "no session\\_end" in md, "an interrupted session says so"
    assert "1 unreadable line(s)" in md
    # Every table row has as many cells as its header: hostile output cannot add a column.
    table: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            assert {len(cells(row)) for row in table} == {len(cells(table[0]))}, table[0]
            table = []
    hostile = next(line for line in md.splitlines() if line.startswith("| smol/a.png/p0 |"))
    assert "<script>" not in md and "&lt;script&gt;" in hostile
    assert "\\[x\\]" in hostile and "\\*bold\\*" in hostile
    assert "\x15" not in md and "\x00" not in md
    assert not any(line.startswith("second line") for line in md.splitlines()), "output on one line"
    assert "<b>" not in md and "&lt;b&gt;now" in md, "guard reasons are escaped too"


def test_html_is_one_self_contained_escaped_file_with_a_memory_chart(session_log: Path) -> None:
    page = render_report(load_log(session_log), "html")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page.lower(), "model output is escaped, and the page has no scripts"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=""", page), "no external assets"
    assert "<link" not in page and "@import" not in page
    urls = re.findall(r"https?://[\w./]+", page)
    assert set(urls) <= {"http://www.w3.org/2000/svg", "http://e.vil"}, "only the SVG namespace and escaped output"
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))  # type: ignore[union-attr]
    ns = "{http://www.w3.org/2000/svg}"
    polylines = svg.findall(f"{ns}polyline")
    assert len(polylines) >= 3, "worker line (broken where no worker ran) and system used"
    labels = "".join(t.text or "" for t in svg.iter(f"{ns}text"))
    assert "warn 75% (6.0 GiB)" in labels and "cleanup 85% (6.8 GiB)" in labels and "abort 95% (7.6 GiB)" in labels
    thresholds = {}
    for line in svg.findall(f"{ns}line"):
        title = line.find(f"{ns}title")
        if title is not None and "of the budget" in (title.text or ""):
            thresholds[(title.text or "").split()[0]] = float(line.get("y1", "0"))
    assert thresholds["warn"] > thresholds["cleanup"] > thresholds["abort"], "higher threshold, higher line"
    markers = svg.findall(f"{ns}g[@class='guard-event']")
    assert len(markers) == 5
    assert "&lt;b&gt;now&lt;/b&gt;" in page and "<b>now" not in page


def test_html_without_memory_samples(tmp_path: Path) -> None:
    b = LogBuilder(tmp_path / "log.jsonl")
    b.start([planned("m/text/t0")]).case("m/text/t0", "passed", 1, output="hi", metrics=metrics(1, 1))
    page = render_report(load_log(b.write()), "html")
    assert "No memory samples in this log." in page


def test_json_is_machine_readable(session_log: Path) -> None:
    doc = json.loads(render_report(load_log(session_log), "json"))
    assert doc["report_version"] == 1 and doc["suite"] == "unit"
    assert [c["case_id"] for c in doc["cases"]] == CASES
    smol_a = doc["cases"][0]
    assert smol_a["output"].startswith("<script>") and "\n" in smol_a["output"], "full output, unescaped"
    assert "\ufffd" in smol_a["output"], "a lone surrogate becomes U+FFFD"
    (repeat,) = doc["repeats"]
    assert repeat["n"] == 3 and repeat["total_s"]["mean"] == pytest.approx(1.2)
    assert repeat["total_s"]["std"] == pytest.approx(statistics.stdev([1.0, 1.2, 1.4]))
    rep = next(m for m in doc["models"] if m["model"] == "rep")
    assert rep["gen_tps"] == {"mean": pytest.approx(12.0), "std": pytest.approx(2.0), "n": 3}
    assert doc["machine"]["host"] == "mac-studio" and doc["budget"]["bytes"] == 8 * GiB
    assert len(doc["guard"]) == 5 and doc["sessions"][0]["counts"] is None


def test_junit_one_suite_per_model_each_case_once(session_log: Path) -> None:
    root = ET.fromstring(render_report(load_log(session_log), "junit"))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["smol", "big", "rep", "late"]
    names = [c.get("name") for c in root.iter("testcase")]
    assert sorted(names) == sorted(c for c in CASES if "#w" not in c), "each case once, warm-ups left out"

    def outcome(case_id: str) -> str:
        case = next(c for c in root.iter("testcase") if c.get("name") == case_id)
        kinds = [child.tag for child in case if child.tag != "system-out"]
        return kinds[0] if kinds else "passed"

    assert outcome("smol/a.png/p0") == "passed"
    assert outcome("smol/b.png/p0") == "failure"
    assert outcome("smol/text/t0") == "error" and outcome("big/a.png/p0") == "error"
    assert outcome("big/text/t0") == "skipped" and outcome("late/text/t0") == "skipped"
    assert outcome("late/a.png/p0") == "error", "an interrupted case is an error for CI"
    smol = suites["smol"]
    assert (smol.get("tests"), smol.get("failures"), smol.get("errors"), smol.get("skipped")) == ("3", "1", "1", "0")
    assert root.get("tests") == "10" and root.get("failures") == "1" and root.get("errors") == "3"
    assert root.get("skipped") is None, "junit-10.xsd: skipped is a <testsuite> attribute only"
    first = next(c for c in root.iter("testcase") if c.get("name") == "smol/a.png/p0")
    assert first.get("time") == "1.500" and first.get("classname") == "smol"
    failure = next(c for c in root.iter("testcase") if c.get("name") == "smol/b.png/p0").find("failure")
    assert failure is not None and "contain 'cat'" in (failure.get("message") or "")
    props = {p.get("name"): p.get("value") for p in smol.iter("property")}
    assert props["version.mlx"] == "0.21.0" and props["device"] == "gpu"


def test_write_report_to_stdout_and_to_a_file(session_log: Path, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(session_log)]) == 0
    assert capfd.readouterr().out.startswith("# vlmtui report: unit")
    assert write_report(session_log, "md", tmp_path / "r.md") == tmp_path / "r.md"
    assert capfd.readouterr() == ("", ""), "the library writes the file and prints nothing"
    out = tmp_path / "r.xml"
    assert main(["report", str(session_log), "--format", "junit", "-o", str(out)]) == 0
    ET.parse(out)
    assert main(["report", str(session_log), "--format", "html", "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_errors_are_one_line(tmp_path: Path, session_log: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert capfd.readouterr().err.strip().count("\n") == 0
    assert main(["report", str(session_log), "-o", str(tmp_path / "no" / "dir" / "r.md")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("vlmtui: error:") and "cannot write the report" in err and err.count("\n") == 1


def test_schema_0_log_still_loads_and_reports(tmp_path: Path) -> None:
    """A log from before schema_version: no version on the first line, case_end without attempt or metrics."""
    path = tmp_path / "old.jsonl"
    lines = [
        {"event": "session_start", "t": T0, "session_id": "old", "suite": "old", "suite_path": "/x/old.toml",
         "cases": [{"case_id": "m/text/t0", "model": "m"}, {"case_id": "m/a.png/p0", "model": "m"}]},
        {"event": "case_start", "t": T0 + 1, "session_id": "old", "case_id": "m/text/t0"},
        {"event": "case_end", "t": T0 + 2, "session_id": "old", "case_id": "m/text/t0", "model": "m",
         "backend": "transformers", "status": "passed", "output": "Paris"},
        {"event": "case_end", "t": T0 + 3, "session_id": "old", "case_id": "m/a.png/p0", "model": "m",
         "backend": "transformers", "status": "failed", "error": "empty file"},
        {"event": "session_end", "t": T0 + 4, "session_id": "old", "counts": {"passed": 1, "failed": 1},
         "stopped": False},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    data = load_log(path)
    assert data.starts[0]["schema_version"] == 0
    assert [(r["attempt"], r["metrics"], r["warmup"]) for r in data.results] == [(1, {}, False), (1, {}, False)]
    assert data.latest()["m/text/t0"]["status"] == "passed"
    md = render_report(data, "md")
    assert "(schema 0)" in md and "| m/text/t0 | passed | 1 |" in md
    assert json.loads(render_report(data, "json"))["counts"] == {"passed": 1, "failed": 1}
    root = ET.fromstring(render_report(data, "junit"))
    assert [c.get("name") for c in root.iter("testcase")] == ["m/text/t0", "m/a.png/p0"]
    assert "Memory over time" in render_report(data, "html")


def test_appending_after_a_torn_line_starts_a_fresh_line(session_log: Path) -> None:
    """A resumed run appends to a log whose last line a kill -9 cut short; its first line must survive."""
    log = SessionLog(session_log)
    log.write("session_start", {"schema_version": 1, "suite": "unit", "info": {}, "cases": []})
    log.close()
    data = load_log(session_log)
    assert len(data.starts) == 2 and data.bad_lines == 1


def test_text_helpers() -> None:
    assert excerpt("a\nb\x00c" + "x" * 100, 10) == "a·b·cxxxx…"
    assert excerpt("\ud800") == "\ufffd"
    assert md_cell("a|b <i>*x*</i> `c` [l](u) & _") == "a\\|b &lt;i&gt;\\*x\\*&lt;/i&gt; \\`c\\` \\[l\\](u) &amp; \\_"
    assert Stat.of([1.0, None, 3.0]).text(1) == "2.0 ± 1.4"
    assert Stat.of([2.0]).text() == "2.00" and Stat.of([]).text() == "—"


def test_log_keeps_a_case_whose_output_has_a_lone_surrogate(tmp_path: Path) -> None:
    """Half an emoji (a streaming server split a surrogate pair) must not lose the case_end line."""
    from vlmtui.engine.events import CaseFinished, CaseResult

    log = SessionLog(tmp_path / "log.jsonl")
    log.write("session_start", {"schema_version": 1, "suite": "s", "info": {}, "cases": []})
    log(CaseFinished(CaseResult("m/text/t0", 1, "m", "openai", None, "Hi", "text", "passed",
                                output="smile \ud83d end")))
    log.close()
    data = load_log(tmp_path / "log.jsonl")
    assert data.latest()["m/text/t0"]["output"] == "smile \ufffd end"
    (tmp_path / "log.jsonl").read_bytes().decode("utf-8")  # valid UTF-8 for jq and friends


def test_log_format_doc_names_every_event_and_field() -> None:
    """docs/log-format.md keeps up with what SessionLog writes."""
    import dataclasses
    import inspect

    from vlmtui.engine import events
    from vlmtui.engine import session_log as log_module

    doc = (Path(__file__).resolve().parents[2] / "docs" / "log-format.md").read_text(encoding="utf-8")
    written = set(re.findall(r'self\.write\("(\w+)"', inspect.getsource(log_module.SessionLog)))
    assert len(written) == 14
    for event in written:
        assert f"`{event}`" in doc, event
    for cls in (events.SessionStarted, events.CaseStarted, events.CaseResult, events.ModelLoading,
                events.ModelLoaded, events.ModelLoadFailed, events.WorkerExited, events.MemoryUpdate,
                events.GuardEvent, events.Notice, events.SessionFinished, events.DownloadProgress,
                events.DownloadFinished):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in doc, f"{cls.__name__}.{f.name}"


def test_chart_shortens_the_idle_gap_before_a_resume(tmp_path: Path) -> None:
    """Killed, resumed three hours later: both stretches stay readable, the line is broken between them."""
    b = LogBuilder(tmp_path / "log.jsonl")
    b.start([planned("m/text/t0"), planned("m/text/t1")])
    for t in (0, 1, 2, 3, 10_800, 10_801, 10_802, 10_803):
        if t == 10_800:
            b.start([planned("m/text/t0"), planned("m/text/t1")], t=t - 0.5)
        b.event("memory", t, system={"used": 4 * GiB}, guarded_bytes=GiB, guarded_source="rss",
                budget_bytes=8 * GiB, level="ok")
    page = render_report(load_log(b.write()), "html")
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))  # type: ignore[union-attr]
    ns = "{http://www.w3.org/2000/svg}"
    assert "idle gaps over 60 s shortened" in "".join(t.text or "" for t in svg.iter(f"{ns}text"))
    worker = [p for p in svg.findall(f"{ns}polyline") if "#0969da" in (p.get("stroke") or "")]
    assert len(worker) == 2, "the line breaks at the resume"
    first_end = float((worker[0].get("points") or "").split()[-1].split(",")[0])
    second_start = float((worker[1].get("points") or "").split()[0].split(",")[0])
    assert first_end > 78 + 0.3 * 672 and second_start - first_end < 0.3 * 672
