"""Driving the dashboard over the real scheduler and tiny models: suites, apps, and waiting for the engine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tests.conftest import SAMPLE_IMAGES
from tests.functional.helpers import cases_of, write_suite
from vlmtui.engine.scheduler import Scheduler
from vlmtui.engine.session_log import SessionLog
from vlmtui.suite.loader import load_suite
from vlmtui.ui.tui.app import VlmApp

SMOL = """
prompts = ["Describe this image."]
text_prompts = ["Hello?"]
max_tokens = 4

[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"
"""
"""One tiny model (built once per test session), one image prompt and one text prompt."""

ONE_IMAGE = str(SAMPLE_IMAGES / "still-life.png")


def ghost_model(tmp_path: Path) -> str:
    """A model whose local path does not exist: each of its cases fails at once."""
    return f"""
[[models]]
id = "ghost"
backend = "transformers"
path = "{tmp_path}/no-such-model"
"""


def make_app(tmp_path: Path, body: str = SMOL, *, images: str = ONE_IMAGE, kind: str | None = None,
             **case_overrides: Any) -> VlmApp:
    """A dashboard over a real scheduler for a suite written into ``tmp_path``, with its session log.

    ``kind`` keeps only the ``image`` or the ``text`` cases; ``case_overrides`` replace Case fields.
    """
    suite_path = write_suite(tmp_path, body, images=images)
    suite = load_suite(suite_path)
    cases = [c for c in cases_of(suite_path, **case_overrides) if kind is None or c.kind == kind]
    scheduler = Scheduler(cases, suite_name=suite.name,
                          suite_path=str(suite_path), guard=suite.guard)
    log = SessionLog(tmp_path / "session.jsonl")
    scheduler.subscribe(log)
    return VlmApp(scheduler, log_path=log.path, fps=20)


@asynccontextmanager
async def driven(app: VlmApp, size: tuple[int, int] = (100, 30)) -> AsyncIterator[Pilot[int]]:
    """Run the app headless; whatever happens in the test, the scheduler and its worker are stopped."""
    async with app.run_test(size=size) as pilot:
        try:
            yield pilot
        finally:
            await app.stop_engine("the test is over")


async def until(pilot: Pilot[Any], predicate: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Let the app run until ``predicate`` holds (or fail saying ``what`` never happened)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


def scheduler_of(app: VlmApp) -> Scheduler:
    """The scheduler a ``make_app`` app runs (the app itself knows it only as an ``Engine``)."""
    assert isinstance(app.engine, Scheduler)
    return app.engine


def idle(app: VlmApp) -> bool:
    """The queue is empty, nothing runs, and the dashboard has drawn every result."""
    scheduler = scheduler_of(app)
    view = app.dashboard.view
    done = sum(len(r) for r in scheduler.results.values())
    shown = sum(len(row.attempts) for row in view.cases.values())
    return (view.started_at is not None and not scheduler.pending and scheduler.running_case is None
            and view.idle and done == shown and done > 0)


def streaming(app: VlmApp) -> bool:
    """A case runs and some of its text has reached the output pane."""
    content = app.dashboard.output
    return content is not None and content.streaming and bool(content.text)
