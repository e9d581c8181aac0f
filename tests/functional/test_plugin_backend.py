"""A backend package known only by the entry point of a temporary dist-info runs a suite end to end:
the suite validates its options, the real worker imports it, the scheduler reports its cases."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.plugin_site import echo_on_path
from tests.functional.helpers import cases_of, scheduler_for, write_suite
from vlmtui.engine.events import CaseFinished, ModelLoaded
from vlmtui.suite.loader import SuiteError, load_suite

ECHO = """
prompts = ["Describe this image."]
text_prompts = ["hello plug-in world"]
max_tokens = 6

[[models]]
id = "echo"
backend = "echo"
path = "tiny:words"
prefix = "echo:"
[models.options]
shout = true
"""


@pytest.fixture
def echo_plugin(tmp_path: Path) -> Iterator[Path]:
    with echo_on_path(tmp_path / "site") as site:
        yield site


def test_the_suite_checks_a_plug_ins_options_in_one_line(tmp_path: Path, echo_plugin: Path) -> None:
    suite = load_suite(write_suite(tmp_path, ECHO))
    assert suite.models[0].options == {"prefix": "echo:", "shout": True}
    assert "vlmtui_echo.backend" not in sys.modules, "the parent reads the declaration, not the backend"
    for body, needle in [
        (ECHO.replace('prefix = "echo:"', "prefix = 7"), "suite.toml:12: prefix: expected a string, got int 7"),
        (ECHO.replace("shout = true", "volume = 11"), "options.volume: unknown key (known keys: "),
        (ECHO.replace('prefix = "echo:"', "prefill_step_size = 8"), "prefill_step_size: unknown key"),
        (ECHO.replace("tiny:words", "tiny:idefics3"), ":11: path: tiny:idefics3 has no echo build (it exists for: "),
        (ECHO.replace("tiny:words", "tiny:nope"), "path: unknown tiny model 'tiny:nope' (known: "),
    ]:
        with pytest.raises(SuiteError) as info:
            load_suite(write_suite(tmp_path, body))
        assert needle in str(info.value) and "\n" not in str(info.value)


async def test_a_plug_in_runs_cases_through_the_real_worker(tmp_path: Path, echo_plugin: Path) -> None:
    cases = cases_of(write_suite(tmp_path, ECHO))
    scheduler, recorder = scheduler_for(cases, suite_name="plug-in")
    counts = await scheduler.run()
    assert counts == {"passed": len(cases)} and len(cases) > 1
    loaded = recorder.of(ModelLoaded)[0]
    assert loaded.versions == {"vlmtui-echo": "0.1"}
    outputs = {e.result.case_id: e.result.output for e in recorder.of(CaseFinished)}
    assert outputs["echo/text/t0"] == "ECHO: HELLO PLUG-IN WORLD ALPHA BETA "
    assert all(out.startswith("ECHO: DESCRIBE THIS IMAGE. [") for key, out in outputs.items() if "/p0" in key)
    assert "vlmtui_echo.backend" not in sys.modules, "only the worker imported the backend"
