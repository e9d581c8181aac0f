"""Datasets as a user runs them, ``vlmtui`` in a subprocess: a bad table or a missing image is one line and
exit 2 before anything loads, ``--skip-missing`` goes on without the item, and a judged session killed with
``kill -9``, resumed and rerun keeps every score right (``vlmtui score`` on its log agrees)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.script_backend import write_script
from tests.fixtures.script_site import script_on_path
from tests.fixtures.vqa_sample import SAMPLE, write_vqa_sample
from tests.functional.test_cli import wait_for_log
from tests.functional.test_judging import GRADER, ORACLE, ORACLE_GRADES, UNSURE, assert_live_equals_rescored
from vlmtui.reports.case_scores import joined_scores
from vlmtui.reports.records import load_log


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[Path]:
    """The scripted backend known to every ``vlmtui`` this test starts and to their workers."""
    with script_on_path(tmp_path / "site"):
        yield tmp_path


def write_suite(tmp_path: Path, *, metrics: str = '["judge:grader", "vqa"]', delay_ms: int = 0,
                extra: str = "") -> Path:
    """An oracle and a grader (scripted, ``delay_ms`` a word) answer the drawn sample; the grader judges."""
    write_vqa_sample(tmp_path / "data")
    oracle = write_script(tmp_path / "oracle.json", ORACLE)
    grader = write_script(tmp_path / "grader.json", GRADER)
    suite = tmp_path / "suite.toml"
    suite.write_text(f"""name = "shapes"
max_tokens = 16

[[models]]
id = "oracle"
backend = "script"
script = "{oracle}"
default = "{UNSURE}"
delay_ms = {delay_ms}

[[models]]
id = "grader"
backend = "script"
script = "{grader}"
default = "{UNSURE}"
delay_ms = {delay_ms}

[[datasets]]
id = "shapes"
format = "vqa2"
questions = "data/questions.json"
annotations = "data/annotations.json"
images = "data/images"
metrics = {metrics}
{extra}""")
    return suite


def vlmtui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlmtui", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error line of a run that exited 2 without a traceback."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("vlmtui: error: ")
    return lines[0]


@pytest.mark.parametrize(("change", "expected"), [
    (('metrics = ["judge:grader", "vqa"]', 'metrics = ["judge:qwen"]'),
     "suite.toml:24: metrics: judge:qwen: no model of the suite has id 'qwen' (models: oracle, grader)"),
    (('metrics = ["judge:grader", "vqa"]', 'metrics = ["bleu"]'),
     "suite.toml:24: metrics: unknown metric 'bleu' (known: vqa, exact, relaxed, anls, judge:<model-id>)"),
    (('"data/questions.json"', '"data/nowhere.json"'), "suite.toml:18: datasets: dataset 'shapes': "),
    (('format = "vqa2"', 'format = "jsonl"'), "suite.toml:21: questions: a jsonl dataset takes path, not questions"),
])  # fmt: skip
def test_a_bad_dataset_table_is_one_line_and_exit_2(scripted: Path, change: tuple[str, str], expected: str) -> None:
    suite = write_suite(scripted)
    suite.write_text(suite.read_text().replace(*change))
    log = scripted / "never.jsonl"
    line = one_line_error(vlmtui("run", str(suite), "--headless", "--log", str(log)))
    assert f"{scripted}/{expected}" in line, line
    assert not log.exists(), "nothing ran"


def test_a_missing_image_stops_the_run_before_anything_loads(scripted: Path) -> None:
    suite = write_suite(scripted)
    (scripted / "data" / "images" / "3.png").unlink()
    log = scripted / "never.jsonl"
    line = one_line_error(vlmtui("run", str(suite), "--headless", "--log", str(log)))
    images = scripted / "data" / "images"
    assert line == (f"vlmtui: error: dataset 'shapes': {scripted}/data/questions.json: item 3000: image not found: "
                    f"{images}/*_000000000003.jpg|png or {images}/3.jpg|png; --skip-missing runs without them")
    assert not log.exists(), "nothing loaded, no log"


def test_skip_missing_runs_without_the_item_and_says_so(scripted: Path) -> None:
    suite = write_suite(scripted, metrics='["vqa"]')
    (scripted / "data" / "images" / "COCO_val2014_000000000004.png").unlink()
    log = scripted / "skip.jsonl"
    done = vlmtui("run", str(suite), "--headless", "--skip-missing", "--log", str(log))
    assert done.returncode == 1, done.stdout + done.stderr  # the oracle's wrong answers fail
    assert "Traceback" not in done.stderr
    assert "2 item(s) left out (--skip-missing)" in done.stdout and "item 4000: image not found" in done.stdout
    data = load_log(log)
    assert sorted(data.latest()) == sorted(f"{model}/shapes/{q.question_id}" for model in ("oracle", "grader")
                                           for q in SAMPLE if q.image_id != 4)
    notices = [line for line in map(json.loads, log.read_text().splitlines()) if line["event"] == "notice"]
    assert any("left out" in str(n["message"]) and n["level"] == "warning" for n in notices)


def judge_lines(lines: list[dict[str, object]], event: str) -> int:
    """How many ``event`` lines of judge cases the log holds."""
    return sum(line["event"] == event and "/judge/" in str(line["case_id"]) for line in lines)


def test_kill_9_mid_judging_then_resume_and_rerun_failed_keep_scores_right(scripted: Path) -> None:
    suite = write_suite(scripted, delay_ms=150)
    log = scripted / "judged.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "vlmtui", "run", str(suite), "--headless", "--log", str(log)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_log(log, lambda lines: judge_lines(lines, "case_end") >= 3
                     and judge_lines(lines, "case_start") > judge_lines(lines, "case_end"))  # one is running
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed = load_log(log)
    assert not killed.ends and any("/judge/" in case_id for case_id in killed.running), "killed mid-judging"

    resumed = vlmtui("run", str(suite), "--headless", "--resume", str(log))
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # two answers are graded under pass_at
    data = assert_live_equals_rescored(log)
    latest = data.latest()
    assert len(latest) == 24 and all(r.attempt == 1 for r in latest.values() if "/judge/" not in r.case_id)
    joined = joined_scores(latest.values())
    for index, grade in enumerate(ORACLE_GRADES):
        case_id = f"oracle/shapes/{SAMPLE[index].question_id}"
        assert joined[case_id].scores["judge:grader"] == grade, case_id
        assert latest[case_id].status == ("passed" if grade >= 0.5 else "failed")
    failed = sorted(case_id for case_id, r in latest.items() if r.status == "failed")
    assert [c for c in failed if "/judge/" not in c] == ["oracle/shapes/2000", "oracle/shapes/4001"]

    rerun = vlmtui("run", "--headless", "--rerun-failed", str(log))
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    data = assert_live_equals_rescored(log)
    latest = data.latest()
    for case_id in ("oracle/shapes/2000", "oracle/shapes/4001"):
        assert latest[case_id].attempt == 2, "the failed answers ran again"
        judge = latest[f"grader/judge/{case_id}"]
        assert judge.judging is not None and judge.judging.attempt == 2, "and were graded again, as attempt 2"
        assert joined_scores(latest.values())[case_id].scores["judge:grader"] is not None
    assert latest["oracle/shapes/1000"].attempt == 1 and latest["grader/judge/oracle/shapes/1000"].attempt == 1
