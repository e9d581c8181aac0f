"""What a model can be asked comes from its own config, not its name (issue 11, item 2), with real tiny
mlx-vlm models in the real worker: read before the load where the config is on disk (``Loaded`` decides
otherwise: test_capabilities_loaded.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.functional.helpers import cases_of, scheduler_for, write_suite
from vlmtui.engine.events import CaseFinished
from vlmtui.engine.plan import Case
from vlmtui.wire.capabilities import TINY_MODEL_TYPES
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.mlx_vlm import MlxVlmBackend

SUITE = """
prompts = ["Describe this image."]
text_prompts = ["What is the capital of France?"]
max_tokens = 4

[[models]]
id = "m"
backend = "mlx-vlm"
path = "{path}"
{extra}
"""


def tiny_dir(family: str) -> Path:
    """The tiny mlx-vlm build of ``family`` (built once into the test session's cache)."""
    return MlxVlmBackend(ModelSpec(id="m", backend="mlx-vlm", path=f"tiny:{family}")).resolve_path()


def tiny_copy(family: str, tmp_path: Path, name: str) -> Path:
    """The tiny mlx-vlm build of ``family`` copied to a directory called ``name``."""
    return Path(shutil.copytree(tiny_dir(family), tmp_path / name))


def suite_cases(tmp_path: Path, path: Path | str, extra: str = "") -> list[Case]:
    image = sorted(SAMPLE_IMAGES.glob("*.jpg"))[0]
    return cases_of(write_suite(tmp_path, SUITE.format(path=path, extra=extra), images=str(image)))


async def run(cases: list[Case]) -> dict[str, tuple[str, str]]:
    """Each kind's (status, error): one image case and one text case."""
    scheduler, recorder = scheduler_for(cases)
    await scheduler.run()
    return {e.result.kind: (e.result.status, e.result.error) for e in recorder.of(CaseFinished)}


async def test_text_case_of_a_vision_only_model_in_a_plainly_named_directory_is_skipped(tmp_path: Path) -> None:
    # In a directory not named tiny:, mlx-vlm 0.7.10 fetches Moondream's tokenizer from the hub and the
    # load fails offline: the text case is skipped all the same, decided from config.json before the load.
    mystery = tiny_copy("moondream2", tmp_path, "mystery-model")
    cases = suite_cases(tmp_path, mystery)
    text = next(c for c in cases if c.kind == "text")
    assert text.skip_reason and "moondream" in text.skip_reason
    outcome = await run(cases)
    assert outcome["text"][0] == "skipped" and "moondream2" in outcome["text"][1], outcome
    assert outcome["image"][0] == "failed" and "moondream/starmie-v1" in outcome["image"][1], outcome


async def test_a_text_capable_model_named_moondream_runs_its_text_case(tmp_path: Path) -> None:
    impostor = tiny_copy("idefics3", tmp_path, "moondream-finetune")
    outcome = await run(suite_cases(tmp_path, impostor))
    assert outcome == {"image": ("passed", ""), "text": ("passed", "")}


async def test_the_suites_capabilities_override_the_config(tmp_path: Path) -> None:
    cases = suite_cases(tmp_path, "tiny:moondream2", 'capabilities = ["image", "text"]')
    assert all(c.skip_reason is None for c in cases)
    outcome = await run(cases)
    # Asked anyway, so the backend's own refusal shows: the case fails, it is not quietly skipped.
    assert outcome["text"][0] == "failed" and "vision-only" in outcome["text"][1], outcome
    cases = suite_cases(tmp_path, "tiny:idefics3", 'capabilities = ["vision-only"]')
    outcome = await run(cases)
    assert outcome["text"][0] == "skipped" and "capabilities in the suite" in outcome["text"][1], outcome


@pytest.mark.parametrize("family", sorted(TINY_MODEL_TYPES))
def test_the_shared_table_names_each_tiny_builds_model_type(family: str) -> None:
    config = json.loads((tiny_dir(family) / "config.json").read_text())
    assert config["model_type"] == TINY_MODEL_TYPES[family]
