"""Backends as plug-ins: a declaration per backend, found through the ``vlmtui.backends`` entry points.

Why declarations and not the backend classes: the vlmtui process needs to know a backend's options,
packages, tiny families, preflight rule and capabilities (to validate a suite, size a model, run
doctor) but must never import a model framework nor the worker's code. So an entry point names a
``BackendDeclaration`` — plain data in a module that imports only the standard library and this
package — and the declaration names its ``Backend`` class as a ``"module:Class"`` string that only the
worker imports. The built-ins are registered the same way (``vlmtui.plugins.builtin``, listed in
pyproject.toml), and this package sits outside ``worker/`` so the engine and the suite may import it
under the import-linter contracts. How to write one: docs/backends.md.
"""

from __future__ import annotations

from vlmtui.plugins.declaration import BackendDeclaration, Capabilities, Option, TinyModels
from vlmtui.plugins.discovery import BackendNotFound, backends, discover, find_backend, refresh, register

__all__ = [
    "BackendDeclaration",
    "BackendNotFound",
    "Capabilities",
    "Option",
    "TinyModels",
    "backends",
    "discover",
    "find_backend",
    "refresh",
    "register",
]
