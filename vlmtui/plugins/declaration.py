"""What a backend declares about itself, readable in the vlmtui process without importing its framework.

A declaration is data: its name, the class that implements it (a ``"module:Class"`` string only the
worker imports), the packages ``doctor`` checks, the options a suite may set, the tiny families it can
build offline, whether the weight-size preflight applies, and its capabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vlmtui.wire.source import ModelSource


@dataclass(frozen=True)
class Option:
    """One key a suite may set on a model of this backend, flat or under ``[models.options]``."""

    name: str
    kind: type
    """``str``, ``int``, ``float``, ``bool``, or ``list`` (a list of strings, e.g. an argv)."""
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What the backend can do at all (a model may still do less: see ``ModelSpec.capabilities``)."""

    images: bool = True
    """Whether a prompt with an image can run."""
    text_only: bool = True
    """Whether a prompt without an image can run."""
    streaming: bool = True
    """Whether text arrives chunk by chunk (otherwise once, with the whole output)."""
    memory_limit: bool = False
    """Whether ``set_memory_limit`` turns over-allocation into a catchable error."""


@dataclass(frozen=True)
class TinyModels:
    """The tiny offline models a backend can run, and how the worker builds each one."""

    flavour: str
    """The cache folder's suffix; backends of one flavour share builds (``hf``, ``mlx``)."""
    builders: Mapping[str, str]
    """Family → ``"module:function"`` that writes the model into an empty folder (worker only)."""
    not_built: Mapping[str, str] = field(default_factory=dict)
    """Family → one line on why this backend has no tiny build of it (the versions, the upstream issue)."""


CrossCheck = Callable[[Mapping[str, Any], ModelSource], tuple[str, str] | None]
"""A rule across options: ``(key, message)`` when the model's options break it, else ``None``."""
Unavailable = Callable[[Mapping[str, Any], ModelSource], str | None]
"""What this machine lacks to run a model with these options (one line saying how to get it), else ``None``."""


@dataclass(frozen=True)
class BackendDeclaration:
    """A backend as the vlmtui process and the worker both see it; registered under ``vlmtui.backends``."""

    name: str
    """The suite's ``backend = "…"`` value, and the entry point's name."""
    implementation: str
    """``"module:Class"`` of the ``Backend`` subclass; imported only in the worker."""
    summary: str = ""
    packages: tuple[str, ...] = ()
    """Modules ``vlmtui doctor`` imports (in a throwaway process) to say whether the backend can run."""
    options: tuple[Option, ...] = ()
    tiny: TinyModels | None = None
    preflight: bool = True
    """Whether the model's weights load into the worker, so the weight-size preflight applies."""
    path_required: bool = True
    """Whether a model needs ``path`` (a server that knows its model does not)."""
    capabilities: Capabilities = field(default_factory=Capabilities)
    check: CrossCheck | None = None
    unavailable: Unavailable | None = None
    """Why a model cannot run on this machine at all (a server binary missing), or ``None``; the plan
    skips its cases with that line. Called in the vlmtui process, so it must import no framework."""

    def option(self, name: str) -> Option | None:
        """The declared option called ``name``."""
        return next((o for o in self.options if o.name == name), None)

    def with_defaults(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared option's value: ``given``'s where set, else the default."""
        values = {o.name: o.default for o in self.options}
        values.update(given)
        return values

    @property
    def tiny_families(self) -> tuple[str, ...]:
        """The ``tiny:<family>`` names this backend can build."""
        return tuple(self.tiny.builders) if self.tiny else ()

    def tiny_problem(self, source: ModelSource, others: tuple[BackendDeclaration, ...] = ()) -> str | None:
        """Why ``source`` is not a tiny model of this backend (``others`` name who has it), or ``None``."""
        if not source.is_tiny or source.name in self.tiny_families:
            return None
        if self.tiny is not None and source.name in self.tiny.not_built:
            return f"{source} has no {self.name} build: {self.tiny.not_built[source.name]}"
        having = [d.name for d in others if source.name in d.tiny_families]
        if having:
            return f"{source} has no {self.name} build (it exists for: {', '.join(having)})"
        known = sorted({f for d in (self, *others) for f in d.tiny_families})
        listed = ", ".join(f"tiny:{f}" for f in known) or "none"
        return f"unknown tiny model {str(source)!r} (known: {listed})"
