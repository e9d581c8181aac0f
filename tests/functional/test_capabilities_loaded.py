"""What a model can be asked, from the worker's ``Loaded`` where the plan could not read its config
(issue 11, item 2): the real worker and the real tiny mlx-vlm Moondream2."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.functional.test_capabilities import run, suite_cases


async def test_a_model_whose_config_is_unread_before_the_load_is_judged_by_loaded(tmp_path: Path) -> None:
    # As a hub repo not downloaded yet: the plan cannot tell, the worker's Loaded does.
    cases = [dataclasses.replace(c, skip_reason=None) for c in suite_cases(tmp_path, "tiny:moondream2")]
    outcome = await run(cases)
    assert outcome["image"] == ("passed", "")
    assert outcome["text"][0] == "skipped" and "model type moondream2" in outcome["text"][1], outcome


async def test_the_suites_capabilities_override_loaded(tmp_path: Path) -> None:
    cases = suite_cases(tmp_path, "tiny:moondream2", 'capabilities = ["image", "text"]')
    outcome = await run([dataclasses.replace(c, skip_reason=None) for c in cases])
    assert outcome["text"][0] == "failed" and "vision-only in mlx-vlm" in outcome["text"][1], outcome
