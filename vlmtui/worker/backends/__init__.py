"""Model backends, found by name through their declarations (vlmtui.plugins); worker process only.

Each backend's module imports its framework lazily, so naming the class costs no framework import.
"""

from __future__ import annotations

import importlib

from vlmtui.plugins import BackendNotFound, find_backend
from vlmtui.worker.backends.base import Backend, BackendError, one_line


def backend_class(name: str) -> type[Backend]:
    """The class a suite's ``backend = "…"`` names, imported from its declaration's ``implementation``."""
    try:
        declaration = find_backend(name)
    except BackendNotFound as exc:
        raise BackendError(f"backend: {exc}") from None
    module_name, _, class_name = declaration.implementation.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"backend {name!r}: cannot import {declaration.implementation} ({one_line(exc)})") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendError(f"backend {name!r}: {declaration.implementation} is not a Backend subclass")
    return cls


__all__ = ["Backend", "BackendError", "backend_class"]
