"""``vlmtui check SUITE``: a dry run. The suite validated, every image of the plan opened and verified,
every model source looked at (a local path present, a hub id cached or to download), and the plan printed
(cases per model, the estimated fit under the budget) without starting a worker or loading anything."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from vlmtui.engine.image_check import check_images
from vlmtui.engine.plan import Case, plan_cases
from vlmtui.engine.selection import select_models
from vlmtui.engine.setup import GuardOverrides, refuse_oversized_budget
from vlmtui.exit_codes import EXIT_OK, EXIT_USAGE
from vlmtui.memory.budget import Budget, resolve_budget
from vlmtui.memory.preflight import cached_snapshot, check_fit, estimate_footprint, hub_cache_dir
from vlmtui.memory.system import probe_system
from vlmtui.suite.loader import Suite, load_suite
from vlmtui.text import plural
from vlmtui.units import format_bytes
from vlmtui.wire.spec import ModelSpec


@dataclass(frozen=True)
class SourceCheck:
    """What ``check`` found about one model's weights: a line to show, and whether the run would fail on it."""

    text: str
    problem: bool = False


def source_check(model: ModelSpec) -> SourceCheck:
    """Where the model's weights are: built offline (tiny), on disk, in the hub cache, or to download."""
    source = model.source
    if source.is_tiny:
        return SourceCheck(f"tiny:{source.name} (built offline on first use)")
    if source.is_local:
        path = source.local_path()
        if path.exists():
            return SourceCheck(f"local {path}")
        return SourceCheck(f"{path}: not found on disk, and not a hub id (owner/name)", problem=True)
    if source.is_hub:
        snapshot = cached_snapshot(source.name, source.revision, None)
        if snapshot is not None:
            return SourceCheck(f"hub {source} (cached in {hub_cache_dir()})")
        return SourceCheck(f"hub {source} (not cached: downloaded at its load)")
    return SourceCheck("no path", problem=True)


def _fit_text(model: ModelSpec, budget: Budget) -> str:
    if model.source.is_tiny:
        return "fits (a tiny demo model: a few MiB)"
    verdict = check_fit(estimate_footprint(model.source, allow_network=False), budget.bytes, 0)
    return ("fits: " if verdict.fits else "does not fit: ") + verdict.reason


def _cases_text(cases: list[Case]) -> str:
    counts = Counter(c.kind for c in cases if not c.warmup)
    skipped = sum(1 for c in cases if c.skip_reason and not c.warmup)
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    if skipped:
        parts += f"; {skipped} the model cannot do, planned as skipped"
    total = sum(counts.values())
    return f"{plural(total, 'case')} ({parts})" if parts else "no cases"


def check_suite(suite_path: str, overrides: GuardOverrides, *, only: Sequence[str] = (),
                skip: Sequence[str] = (), force: bool = False, out: TextIO | None = None) -> int:
    """Validate and print the plan; 0 when a run could start, 2 when something would fail (one line each on
    stderr). A suite error is raised as ``SuiteError`` (the command prints it)."""
    stream = out or sys.stdout
    suite: Suite = select_models(load_suite(suite_path), only, skip)
    guard = overrides.apply(suite.guard)
    system_total = probe_system().total
    budget = resolve_budget(guard.budget, {}, system_total)
    refuse_oversized_budget(budget, system_total, force)
    cases = plan_cases(suite)
    images = sorted({c.image for c in cases if c.image is not None})
    problems = list(check_images(images).values())
    print(f"suite {suite.name} ({suite.path}): {len(cases)} planned cases, {len(images)} distinct images, "
          f"budget {format_bytes(budget.bytes)} ({budget.source})", file=stream)
    for model in suite.models:
        own = [c for c in cases if c.model.id == model.id]
        found = source_check(model)
        if found.problem:
            problems.append(f"model {model.id!r}: {found.text}")
        print(f"  {model.id} [{model.backend}]: {_cases_text(own)}; {found.text}; {_fit_text(model, budget)}",
              file=stream)
    for problem in problems:
        print(f"vlmtui: error: {problem}", file=sys.stderr)
    if problems:
        print(f"check: {len(problems)} problem(s); nothing was loaded", file=stream)
        return EXIT_USAGE
    print(f"check: ok; {len(images)} images readable; nothing was loaded", file=stream)
    return EXIT_OK
