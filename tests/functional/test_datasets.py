"""The drawn VQA v2 sample run for real, as a user runs it: ``suites/vqa-sample.toml`` on the tiny models
(transformers and mlx-vlm), and the same dataset through an OpenAI-compatible endpoint (a managed
``mlx_vlm.server``). Tiny models answer gibberish, so scores are mostly 0: what is checked is that every
answer is scored, in [0, 1], passed or failed at ``pass_at``, and that ``vlmtui score`` and the reports
read the same scores back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.vqa_sample import SAMPLE
from tests.functional.test_judging import assert_live_equals_rescored
from vlmtui.reports.records import SessionRecords
from vlmtui.suite.datasets import DEFAULT_ANSWER_FORMAT

pytestmark = pytest.mark.slow

SAMPLE_DIR = ROOT / "suites" / "vqa-sample"
SERVED = f"""name = "vqa-served"
max_tokens = 8

[[models]]
id = "smolvlm-tiny-server"
backend = "openai"
path = "tiny:idefics3"
startup_timeout_s = 240.0
command = ["{{python}}", "-m", "mlx_vlm.server", "--host", "127.0.0.1", "--port", "{{port}}",
           "--model", "{{model_path}}", "--log-level", "WARNING"]

[[datasets]]
id = "vqa-sample"
format = "vqa2"
questions = "{SAMPLE_DIR}/questions.json"
annotations = "{SAMPLE_DIR}/annotations.json"
images = "{SAMPLE_DIR}/images"
metrics = ["vqa", "relaxed"]
pass_at = 0.5
"""


def vlmtui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vlmtui", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def run_and_check(suite: Path, log: Path, models: list[str]) -> SessionRecords:
    """Run ``suite`` headless and check every dataset answer's scores, status and item; the log read back."""
    done = vlmtui("run", str(suite), "--headless", "--log", str(log))
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    data = assert_live_equals_rescored(log)
    latest = data.latest()
    expected = {f"{model}/vqa-sample/{q.question_id}": q for model in models for q in SAMPLE}
    assert sorted(latest) == sorted(expected)
    for case_id, result in latest.items():
        question = expected[case_id]
        scores = result.scoring
        assert result.prompt == f"{question.question}\n{DEFAULT_ANSWER_FORMAT['vqa2']}"
        assert result.image is not None and result.image.endswith(".png")
        assert result.metrics.gen_tokens, f"{case_id} reached the model"
        assert list(scores.scores) == ["vqa", "relaxed"] and scores.primary == "vqa" and scores.pass_at == 0.5
        assert all(value is not None and 0.0 <= value <= 1.0 for value in scores.scores.values()), scores
        assert scores.references == question.answers and scores.item_id == str(question.question_id)
        assert scores.dataset == "vqa-sample" and scores.answer_type == question.answer_type
        vqa = scores.scores["vqa"]
        assert vqa is not None
        if vqa >= 0.5:
            assert (result.status, result.error) == ("passed", ""), case_id
        else:
            assert (result.status, result.error) == ("failed", f"vqa {vqa:.2f} is under pass_at 0.5"), case_id
    report = vlmtui("report", str(log), "--format", "json")
    assert report.returncode == 0, report.stderr
    summaries = {m["model"]: m for m in json.loads(report.stdout)["models"]}
    for model in models:
        assert summaries[model]["scores"]["vqa"]["n"] == len(SAMPLE)
        assert 0.0 <= summaries[model]["scores"]["relaxed"]["mean"] <= 1.0
    scored = vlmtui("score", str(log), "-o", str(log.with_name("scored.jsonl")))
    assert scored.returncode == 0 and f"Scored {len(expected)} answer(s)" in scored.stdout, scored.stderr
    return data


def test_the_shipped_vqa_sample_suite_runs_on_the_tiny_models(tmp_path: Path) -> None:
    data = run_and_check(ROOT / "suites" / "vqa-sample.toml", tmp_path / "vqa.jsonl",
                         ["smolvlm-tiny-hf", "smolvlm-tiny-mlx"])
    assert [load.model for load in data.loads] == ["smolvlm-tiny-hf", "smolvlm-tiny-mlx"], "each model loads once"


def test_the_vqa_sample_through_an_openai_compatible_endpoint(tmp_path: Path) -> None:
    suite = tmp_path / "served.toml"
    suite.write_text(SERVED)
    data = run_and_check(suite, tmp_path / "served.jsonl", ["smolvlm-tiny-server"])
    assert all(r.metrics.raw.get("metrics_source") in ("server", "client", None) for r in data.latest().values())
