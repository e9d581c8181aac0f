"""``run --only MODEL[,MODEL]`` and ``--skip MODEL``: the suite's models chosen on the command line, so a
script runs part of a suite without editing it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from vlmtui.suite.loader import Suite, SuiteError


def model_ids(values: Sequence[str] | None) -> list[str]:
    """Model ids from repeated and comma-separated options (``--only a,b --only c``), empty parts left out."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def select_models(suite: Suite, only: Sequence[str] = (), skip: Sequence[str] = ()) -> Suite:
    """The suite with only the models ``only`` names (all when empty), less those ``skip`` names.

    A name the suite does not have is a ``SuiteError`` listing the suite's models; so is a selection that
    leaves none.
    """
    known = [model.id for model in suite.models]
    for option, names in (("--only", only), ("--skip", skip)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise SuiteError(f"{option}: no model {unknown[0]!r} in {suite.path} (its models: {', '.join(known)})")
    chosen = tuple(m for m in suite.models if (not only or m.id in only) and m.id not in skip)
    if not chosen:
        raise SuiteError(f"--only/--skip leave no model of {suite.path} to run")
    return suite if len(chosen) == len(suite.models) else dataclasses.replace(suite, models=chosen)
