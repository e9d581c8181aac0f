"""Suite files: what parses, and the one-line errors for what does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_IMAGES
from vlmtui.engine.plan import plan_cases
from vlmtui.suite.loader import SuiteError, load_suite

GOOD = f"""
name = "t"
images = ["{SAMPLE_IMAGES}/*.jpg"]
prompts = ["Describe.", {{ text = "Count.", expect = {{ min_tokens = 2 }} }}]
text_prompts = ["Hello?"]
max_tokens = 8

[guard]
budget = "12GiB"
warn = 70

[[models]]
id = "a"
backend = "transformers"
path = "tiny:idefics3"

[[models]]
id = "moon"
backend = "mlx-vlm"
path = "tiny:moondream2"
max_tokens = 4
[models.options]
prefill_step_size = 128
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_good_suite_parses_and_plans(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    assert suite.name == "t" and suite.max_tokens == 8
    assert suite.guard.budget == "12GiB" and suite.guard.warn == 70 and suite.guard.abort == 95
    assert [m.id for m in suite.models] == ["a", "moon"]
    assert suite.models[1].options == {"prefill_step_size": 128} and suite.models[1].max_tokens == 4
    assert suite.prompts[1].expect.min_tokens == 2
    cases = plan_cases(suite)
    images = len(suite.images)
    assert images == 2
    assert len(cases) == 2 * (images * 2 + 1)
    moon_text = next(c for c in cases if c.model.id == "moon" and c.kind == "text")
    assert moon_text.skip_reason and "vision-only" in moon_text.skip_reason
    assert all(c.skip_reason is None for c in cases if c.model.id == "a")
    assert next(c for c in cases if c.model.id == "moon").max_tokens == 4


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace('max_tokens = 8', 'max_tokens = 8\ncolour = "red"'), "suite.toml:7: colour: unknown key"),
        (GOOD.replace('max_tokens = 8', 'max_tokens = "eight"'), "suite.toml:6: max_tokens: expected an integer"),
        (GOOD.replace('backend = "transformers"', 'backend = "onnx"'), "suite.toml:14: backend: must be one of"),
        (GOOD.replace('*.jpg', '*.nothing'), "suite.toml:3: images: "),
        (GOOD.replace('warn = 70', 'warn = 99'), "warn: thresholds must rise"),
        (GOOD.replace('budget = "12GiB"', 'budget = "lots"'), "budget: not a size"),
        (GOOD.replace('prefill_step_size = 128', 'prefill_size = 128'), "options.prefill_size: unknown key"),
        (GOOD.replace('id = "moon"', 'id = "a"'), "is used twice"),
        (GOOD + '\n[[models]]\nid = "s"\nbackend = "openai"\ncommand = "python -m server"\n', "argv list"),
        ("name = [", "not valid TOML"),
    ],
    ids=["unknown-key", "wrong-type", "bad-backend", "glob-matches-nothing", "thresholds", "budget",
         "unknown-option", "duplicate-id", "shell-string", "not-toml"],
)
def test_bad_suites_are_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, text))
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.toml")


def test_cli_bad_suite_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('max_tokens = 8', 'max_tokens = 8\ncolour = "red"'))
    done = subprocess.run([sys.executable, "-m", "vlmtui", "run", str(path), "--headless"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "colour: unknown key" in lines[0] and "Traceback" not in done.stderr
    missing = subprocess.run([sys.executable, "-m", "vlmtui", "run", str(tmp_path / "x.toml")],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "not found" in missing.stderr


def test_shipped_suites_are_valid() -> None:
    for path in (ROOT / "suites").glob("*.toml"):
        assert load_suite(path).models, path


def test_duplicate_id_error_names_the_second_tables_line(tmp_path: Path) -> None:
    """Issue 11 item 5: the duplicate three tables after the first is the line named, not the table after it."""
    tables = "".join(
        f'\n[[models]]\nid = "{model_id}"\nbackend = "transformers"\npath = "tiny:idefics3"\n'
        for model_id in ("dup", "b", "c", "dup")
    )
    text = f'name = "t"\ntext_prompts = ["Hello?"]\n{tables}'
    path = write(tmp_path, text)
    second = [i for i, line in enumerate(text.splitlines(), 1) if line == 'id = "dup"'][1]
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value) == f"{path.resolve()}:{second}: id: model id 'dup' is used twice"
