"""Finding backends: the ``vlmtui.backends`` entry points of every installed distribution, read once.

An entry point names a ``BackendDeclaration`` object. Loading one imports only the module that holds
it, which must not import a model framework at import time (the built-ins keep theirs in
``vlmtui.plugins.builtin``); the backend class it names is imported by the worker alone. A plug-in
that fails to load is not fatal: it is left out and its one-line problem is kept for the suite's error
and for ``vlmtui doctor``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from vlmtui.plugins.declaration import BackendDeclaration

GROUP = "vlmtui.backends"

_registered: dict[str, BackendDeclaration] = {}


class BackendNotFound(LookupError):
    """A backend name that no plug-in provides (or whose plug-in is broken); ``str()`` is one line."""


@dataclass(frozen=True)
class Discovered:
    """The backends found, by name in discovery order, and the plug-ins that could not be used."""

    backends: dict[str, BackendDeclaration] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    """Name → the distribution (and version) that registered it, or ``registered in-process``."""
    problems: dict[str, str] = field(default_factory=dict)
    """Name → one line saying why that plug-in was left out."""


def _origin(entry: EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else entry.value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@functools.cache
def _scan() -> Discovered:
    found = Discovered()
    by_name: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=GROUP):
        by_name.setdefault(entry.name, []).append(entry)
    for name, entries in by_name.items():
        if len(entries) > 1:
            origins = "; ".join(_origin(e) for e in entries)
            found.problems[name] = f"backend {name!r} is registered twice ({origins})"
            continue
        entry = entries[0]
        try:
            declaration = entry.load()
        except Exception as exc:  # a broken plug-in must not take the others down
            found.problems[name] = f"the plug-in {name!r} ({_origin(entry)}) failed to load: {_first_line(exc)}"
            continue
        if not isinstance(declaration, BackendDeclaration) or declaration.name != name:
            found.problems[name] = (f"the plug-in {name!r} ({_origin(entry)}) does not name a "
                                    f"BackendDeclaration called {name!r}: {entry.value}")
            continue
        found.backends[name] = declaration
        found.origins[name] = _origin(entry)
    return found


def discover() -> Discovered:
    """Every usable backend (entry points, then in-process registrations) and the plug-ins left out."""
    scanned = _scan()
    backends = {**scanned.backends, **_registered}
    origins = {**scanned.origins, **{name: "registered in-process" for name in _registered}}
    problems = {k: v for k, v in scanned.problems.items() if k not in _registered}
    return Discovered(backends, origins, problems)


def backends() -> tuple[BackendDeclaration, ...]:
    """Every usable backend, in discovery order."""
    return tuple(discover().backends.values())


def find_backend(name: str) -> BackendDeclaration:
    """The backend called ``name``; ``BackendNotFound`` says what exists, or why this one is broken."""
    found = discover()
    if name in found.backends:
        return found.backends[name]
    if name in found.problems:
        raise BackendNotFound(found.problems[name])
    raise BackendNotFound(f"must be one of {', '.join(found.backends)}, got {name!r}")


def register(declaration: BackendDeclaration) -> None:
    """Make a backend known in this process only (a test's fault-injection worker, an embedding app)."""
    _registered[declaration.name] = declaration


def refresh() -> None:
    """Forget what was scanned, so distributions added to ``sys.path`` since are found."""
    _scan.cache_clear()
