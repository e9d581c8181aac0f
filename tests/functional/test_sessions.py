"""Sessions for real: kill -9 then --resume, SIGHUP, --rerun-failed, repeats; reports from the logs.

Each test runs the ``vlmtui`` command as a subprocess with its real worker and tiny transformers
models, then reads the session log and the reports written from it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ROOT, SAMPLE_IMAGES
from tests.functional.helpers import write_suite
from vlmtui.cli import main
from vlmtui.engine.session_log import load_log
from vlmtui.reports.report import render_report

pytestmark = pytest.mark.slow

# The llava case is slow on purpose (max_tokens = 200, a few seconds on CPU): the run is killed under it.
TWO_MODELS = """
prompts = ["Describe this image."]
text_prompts = ["Hello?"]
max_tokens = 4

[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"

[[models]]
id = "llava"
backend = "transformers"
path = "tiny:llava-next"
capabilities = ["image"]
max_tokens = 200
"""

# Never finishes within the test: SIGHUP aborts it.
ONE_SLOW = """
prompts = ["Describe this image."]
max_tokens = 3000

[[models]]
id = "llava"
backend = "transformers"
path = "tiny:llava-next"
"""

SMOL = """
prompts = ["Describe this image."]
max_tokens = 4

[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"
"""


def start_vlmtui(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """``vlmtui ARGS`` in the background, its output kept in a file (a pipe nobody reads could block it)."""
    with open(tmp_path / f"vlmtui-{time.monotonic_ns()}.out", "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "vlmtui", *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, env=os.environ.copy())


def run_vlmtui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlmtui", *args], capture_output=True, text=True, cwd=ROOT,
                          env=os.environ.copy(), timeout=timeout, check=False)


def records(log: Path) -> list[dict[str, Any]]:
    """The log's complete lines (a line being written is skipped)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def wait_for(log: Path, proc: subprocess.Popen[bytes], done: Callable[[list[dict[str, Any]]], bool],
             timeout: float = 90) -> list[dict[str, Any]]:
    """Poll the log until ``done(records)``; fail if vlmtui exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = records(log)
        if done(lines):
            return lines
        assert proc.poll() is None, f"vlmtui exited early with {proc.returncode}"
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting on {log}")


def workers_of(pid: int) -> list[psutil.Process]:
    """The ``vlmtui.worker`` processes under a vlmtui process."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if any("vlmtui.worker" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie waiting for its new parent to reap it counts as gone)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.NoSuchProcess:
            continue
    return left


def wait_gone(procs: list[psutil.Process], timeout: float = 15) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(procs)


def count(lines: list[dict[str, Any]], event: str) -> Counter[str]:
    return Counter(r["case_id"] for r in lines if r.get("event") == event)


def junit_cases(log: Path, tmp_path: Path) -> list[str]:
    out = tmp_path / "junit.xml"
    assert main(["report", str(log), "--format", "junit", "-o", str(out)]) == 0
    return [case.get("name") or "" for case in ET.parse(out).getroot().iter("testcase")]


def test_kill_9_then_resume_runs_each_case_exactly_once(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, TWO_MODELS, images=f"{SAMPLE_IMAGES}/bicycle.jpg")
    log = tmp_path / "session.jsonl"
    slow = "llava/bicycle.jpg/p0"
    proc = start_vlmtui(tmp_path, "run", str(suite), "--headless", "--log", str(log))
    try:
        lines = wait_for(log, proc, lambda rs: bool(count(rs, "case_end")) and slow in count(rs, "case_start"))
        workers = workers_of(proc.pid)
        assert workers, "a worker runs the slow case"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not wait_gone(workers), "the worker exits on its own when vlmtui dies (its stdin closes)"

    planned = [c["case_id"] for c in lines[0]["cases"]]
    assert planned == ["smol/bicycle.jpg/p0", "smol/text/t0", slow, "llava/text/t0"]
    killed = load_log(log)
    assert slow in killed.running and not killed.ends, "killed under the slow case, no session_end"
    before = count(records(log), "case_end")
    assert set(before) == {"smol/bicycle.jpg/p0", "smol/text/t0"}
    assert "| llava/bicycle.jpg/p0 | interrupted |" in render_report(killed, "md")

    resumed = run_vlmtui("run", str(suite), "--headless", "--resume", str(log))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    lines = records(log)
    assert len(lines) == len(log.read_text(encoding="utf-8").splitlines()), "still one valid JSONL file"
    ends, starts = count(lines, "case_end"), count(lines, "case_start")
    assert all(ends[c] == 1 for c in planned), ends
    assert starts["smol/bicycle.jpg/p0"] == 1 and starts["smol/text/t0"] == 1, "finished cases are not rerun"
    assert starts[slow] == 2, "the interrupted case runs again"
    data = load_log(log)
    assert len(data.starts) == 2 and data.ends[-1]["counts"] == {"passed": 3, "skipped": 1}
    assert len({s["session_id"] for s in data.starts}) == 1, "the resumed run keeps the session id"
    assert data.latest()["llava/text/t0"]["status"] == "skipped"

    names = junit_cases(log, tmp_path)
    assert sorted(names) == sorted(planned) and len(names) == len(set(names)), "every case exactly once"
    # md, html and junit from the same log.
    for fmt in ("md", "html", "json"):
        assert main(["report", str(log), "--format", fmt, "-o", str(tmp_path / f"report.{fmt}")]) == 0
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    # Two attempts: the one kill -9 cut short counts, as its rerun's `attempt: 2` says.
    assert "| llava/bicycle.jpg/p0 | passed | 2 |" in md and "2 session(s)" in md
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "warn 75%" in html


def test_sighup_ends_a_headless_run_cleanly(tmp_path: Path) -> None:
    """A dropped SSH connection: the running case is aborted, the log is closed, no worker is left."""
    suite = write_suite(tmp_path, ONE_SLOW, images=f"{SAMPLE_IMAGES}/bicycle.jpg")
    log = tmp_path / "session.jsonl"
    proc = start_vlmtui(tmp_path, "run", str(suite), "--headless", "--log", str(log))
    try:
        wait_for(log, proc, lambda rs: bool(count(rs, "case_start")))
        workers = workers_of(proc.pid)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert workers and not wait_gone(workers, timeout=5)
    data = load_log(log)
    assert data.bad_lines == 0 and not data.running
    (end,) = data.ends
    assert end["stopped"] is True and "SIGHUP" in end["reason"]
    (result,) = data.results
    assert result["status"] == "aborted" and "SIGHUP" in result["error"]


def test_rerun_failed_appends_an_attempt(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "pic.png").write_bytes(b"")  # fails its case: empty file
    shutil.copy(SAMPLE_IMAGES / "lake.jpg", images / "lake.jpg")
    suite = write_suite(tmp_path, SMOL, images=f"{images}/*")
    log = tmp_path / "session.jsonl"

    first = run_vlmtui("run", str(suite), "--headless", "--log", str(log))
    assert first.returncode == 1, first.stdout + first.stderr
    latest = load_log(log).latest()
    assert latest["smol/pic.png/p0"]["status"] == "failed" and "empty file" in latest["smol/pic.png/p0"]["error"]
    assert latest["smol/lake.jpg/p0"]["status"] == "passed"

    shutil.copy(SAMPLE_IMAGES / "still-life.png", images / "pic.png")  # fixed
    second = run_vlmtui("run", "--rerun-failed", str(log), "--headless")
    assert second.returncode == 0, second.stdout + second.stderr

    data = load_log(log)
    attempts = [(r["attempt"], r["status"]) for r in data.results if r["case_id"] == "smol/pic.png/p0"]
    assert attempts == [(1, "failed"), (2, "passed")]
    assert count(records(log), "case_end")["smol/lake.jpg/p0"] == 1, "a passed case is not rerun"
    md = render_report(data, "md")
    assert "| smol/pic.png/p0 | passed | 2 |" in md
    assert sorted(junit_cases(log, tmp_path)) == ["smol/lake.jpg/p0", "smol/pic.png/p0"]


def test_rerun_failed_into_a_new_log_carries_the_other_results(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "pic.png").write_bytes(b"")  # fails its case: empty file
    shutil.copy(SAMPLE_IMAGES / "lake.jpg", images / "lake.jpg")
    suite = write_suite(tmp_path, SMOL, images=f"{images}/*")
    old, new = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert run_vlmtui("run", str(suite), "--headless", "--log", str(old)).returncode == 1

    shutil.copy(SAMPLE_IMAGES / "still-life.png", images / "pic.png")  # fixed
    old_text = old.read_text()
    second = run_vlmtui("run", "--rerun-failed", str(old), "--log", str(new), "--headless")
    assert second.returncode == 0, second.stdout + second.stderr
    assert old.read_text() == old_text, "the old log is read, never written"

    data = load_log(new)
    latest = data.latest()
    # The passed case was not run again, yet the new log alone reports it, marked as copied.
    assert count(records(new), "case_end") == {"smol/lake.jpg/p0": 1, "smol/pic.png/p0": 1}
    assert latest["smol/lake.jpg/p0"]["status"] == "passed"
    assert latest["smol/lake.jpg/p0"]["carried_from"] == str(old)
    assert latest["smol/lake.jpg/p0"]["started_at"] == load_log(old).latest()["smol/lake.jpg/p0"]["started_at"]
    assert latest["smol/pic.png/p0"]["status"] == "passed" and "carried_from" not in latest["smol/pic.png/p0"]
    assert latest["smol/pic.png/p0"]["attempt"] == 2 and data.attempts()["smol/pic.png/p0"] == 2
    assert data.starts[0]["session_id"] == load_log(old).starts[0]["session_id"]
    md = render_report(data, "md")
    assert "not run" not in md
    assert "| smol/lake.jpg/p0 | passed | 1 |" in md and "| smol/pic.png/p0 | passed | 2 |" in md
    assert sorted(junit_cases(new, tmp_path)) == ["smol/lake.jpg/p0", "smol/pic.png/p0"]


def test_repeats_and_warmup_report_mean_and_std(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "repeat = 3\nwarmup = 1\n" + SMOL, images=f"{SAMPLE_IMAGES}/lake.jpg")
    log = tmp_path / "session.jsonl"
    done = run_vlmtui("run", str(suite), "--headless", "--log", str(log))
    assert done.returncode == 0, done.stdout + done.stderr
    data = load_log(log)
    assert [(r["case_id"], r["warmup"]) for r in data.results] == [
        ("smol/lake.jpg/p0#w0", True), ("smol/lake.jpg/p0#r0", False), ("smol/lake.jpg/p0#r1", False),
        ("smol/lake.jpg/p0#r2", False),
    ]
    doc = json.loads(render_report(data, "json"))
    (repeat,) = doc["repeats"]
    assert repeat["case_id"] == "smol/lake.jpg/p0" and repeat["n"] == 3
    assert repeat["total_s"]["std"] is not None and repeat["gen_tps"]["std"] is not None
    assert doc["models"][0]["total_s"]["n"] == 3, "the warm-up is left out of the means"
    md = render_report(data, "md")
    row = next(line for line in md.splitlines() if line.startswith("| smol/lake.jpg/p0 |"))
    assert row.count("±") == 4, row
    assert sorted(junit_cases(log, tmp_path)) == [f"smol/lake.jpg/p0#r{i}" for i in range(3)]
