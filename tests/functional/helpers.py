"""Building blocks for engine tests: suites written to disk, a scheduler with an event recorder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vlmtui.engine.events import Event
from vlmtui.engine.plan import Case, plan_cases
from vlmtui.engine.scheduler import Scheduler
from vlmtui.suite.loader import load_suite
from vlmtui.wire.spec import ModelSpec


def write_suite(tmp_path: Path, body: str, *, images: str = "", name: str = "suite.toml") -> Path:
    """A suite file in ``tmp_path``; ``images`` is a glob (default: the sample images)."""
    from tests.conftest import SAMPLE_IMAGES

    glob = images or f"{SAMPLE_IMAGES}/*"
    path = tmp_path / name
    path.write_text(f'name = "test"\nimages = ["{glob}"]\n{body}')
    return path


def cases_of(path: Path, **overrides: Any) -> list[Case]:
    """The planned cases of a suite file, with Case fields overridden."""
    cases = plan_cases(load_suite(path))
    return [dataclasses.replace(c, **overrides) for c in cases] if overrides else cases


class Recorder:
    """Collects every event; ``of(T)`` filters them by type."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def scheduler_for(cases: list[Case], **kwargs: Any) -> tuple[Scheduler, Recorder]:
    scheduler = Scheduler(cases, **kwargs)
    recorder = Recorder()
    scheduler.subscribe(recorder)
    return scheduler, recorder


def model_spec(**values: object) -> ModelSpec:
    """A ModelSpec from flat keys, as a suite writes them: the backend's own options go to ``options``."""
    fields = set(ModelSpec.__dataclass_fields__)
    options = {k: v for k, v in values.items() if k not in fields}
    common = {k: v for k, v in values.items() if k in fields}
    return ModelSpec(**common, options=options)  # type: ignore[arg-type]
