"""What a model can be asked, from its own config (issue 11, item 2): read at plan time, suite overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vlmtui.engine.model_config import read_model_type
from vlmtui.engine.plan import plan_cases
from vlmtui.suite.loader import load_suite
from vlmtui.wire.capabilities import TINY_MODEL_TYPES, VISION_ONLY_MODEL_TYPES, capabilities_of
from vlmtui.wire.spec import ModelSpec


def model_dir(parent: Path, name: str, model_type: str) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["X"]}))
    return folder


def suite(tmp_path: Path, path: Path | str, extra: str = "") -> Path:
    text = f'name = "t"\ntext_prompts = ["Hello?"]\n\n[[models]]\nid = "m"\nbackend = "mlx-vlm"\npath = "{path}"\n'
    suite_path = tmp_path / "suite.toml"
    suite_path.write_text(text + extra)
    return suite_path


def text_case_skip(tmp_path: Path, path: Path | str, extra: str = "") -> str | None:
    (case,) = plan_cases(load_suite(suite(tmp_path, path, extra)))
    assert case.kind == "text"
    return case.skip_reason


def test_a_vision_only_model_in_a_directory_named_otherwise_is_skipped(tmp_path: Path) -> None:
    reason = text_case_skip(tmp_path, model_dir(tmp_path, "mystery-model", "moondream2"))
    assert reason is not None and "vision-only" in reason and "moondream2" in reason


def test_a_text_capable_model_with_moondream_in_its_name_is_not_skipped(tmp_path: Path) -> None:
    assert text_case_skip(tmp_path, model_dir(tmp_path, "moondream-finetune", "idefics3")) is None


def test_the_suites_capabilities_override_the_config(tmp_path: Path) -> None:
    moon = model_dir(tmp_path, "mystery-model", "moondream2")
    assert text_case_skip(tmp_path, moon, 'capabilities = ["image", "text"]\n') is None
    smol = model_dir(tmp_path, "smol", "idefics3")
    reason = text_case_skip(tmp_path, smol, 'capabilities = ["vision-only"]\n')
    assert reason is not None and "vision-only" in reason and "suite" in reason


def test_without_a_readable_config_nothing_is_skipped_at_plan_time(tmp_path: Path) -> None:
    assert text_case_skip(tmp_path, tmp_path / "no-such-model") is None
    assert text_case_skip(tmp_path, "nobody/moondream2-not-downloaded") is None  # decided at Loaded


def test_tiny_families_are_known_before_they_are_built() -> None:
    assert read_model_type(ModelSpec(id="m", backend="mlx-vlm", path="tiny:moondream")) == "moondream2"
    assert read_model_type(ModelSpec(id="m", backend="transformers", path="tiny:smolvlm")) == "idefics3"
    assert capabilities_of(TINY_MODEL_TYPES["moondream2"]) == {"image"}
    assert capabilities_of("idefics3") == {"image", "text"}
    assert {"moondream1", "moondream2"} <= VISION_ONLY_MODEL_TYPES


def hub_snapshot(hub: Path, repo_id: str, model_type: str, commit: str = "a" * 40) -> None:
    """A repo in the hub cache's own layout (models--org--name/refs/main → snapshots/<commit>/)."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": model_type}))


def test_a_cached_hub_repo_is_read_from_the_cache_that_hf_home_names(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf-home"
    hub_snapshot(hf_home / "hub", "someone/renamed-model", "moondream1")
    suite_path = suite(tmp_path, "someone/renamed-model")
    code = (
        "import sys\n"
        "from vlmtui.engine.plan import plan_cases\n"
        "from vlmtui.suite.loader import load_suite\n"
        "print(plan_cases(load_suite(sys.argv[1]))[0].skip_reason)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(suite_path)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "vision-only" in done.stdout and "moondream1" in done.stdout


def test_an_unreadable_config_is_no_answer(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert read_model_type(ModelSpec(id="m", backend="mlx-vlm", path=str(broken))) is None
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "config.json").write_text("[]")
    assert read_model_type(ModelSpec(id="m", backend="mlx-vlm", path=str(listed))) is None


@pytest.mark.parametrize("backend", ["transformers", "mlx-vlm"])
def test_the_parent_reads_no_framework(backend: str) -> None:
    """Reading a config at plan time imports no framework (the architecture's rule)."""
    code = (
        "import sys\n"
        "from vlmtui.engine.model_config import read_model_type\n"
        "from vlmtui.wire.spec import ModelSpec\n"
        f"read_model_type(ModelSpec(id='m', backend={backend!r}, path='someone/x'))\n"
        "print([m for m in ('torch', 'transformers', 'mlx') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
