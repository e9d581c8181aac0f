"""Tiny randomly initialised models, built offline on first use and cached.

``tiny:<family>`` in a suite resolves here, through the builder its backend declares (vlmtui.plugins).
The models are real architectures loaded and run by the real library code, with random weights: their
output is gibberish, their timing and memory behaviour are real. Builders import torch/transformers/mlx,
so this runs inside the worker only.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

from vlmtui.filelock import locked
from vlmtui.plugins import BackendNotFound, backends, find_backend
from vlmtui.wire.source import ModelSource

BUILD_VERSION = 2
"""Bump when a builder changes, so stale cached models are rebuilt."""


class TinyModelError(Exception):
    """A ``tiny:`` name that does not exist for the backend; ``str()`` is one line."""


def cache_dir() -> Path:
    """Where tiny models live: ``$VLMTUI_CACHE_DIR`` or the platform's user cache directory."""
    override = os.environ.get("VLMTUI_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("vlmtui"))



def tiny_model_dir(path: str, backend: str) -> Path:
    """The directory of the tiny model named by ``path`` for ``backend``, built first if needed."""
    source = ModelSource.parse(path)
    try:
        declaration = find_backend(backend)
    except BackendNotFound as exc:
        raise TinyModelError(str(exc)) from None
    if not source.is_tiny:
        raise TinyModelError(f"{path!r} is not a tiny:<family> name")
    problem = declaration.tiny_problem(source, backends())
    if problem is not None or declaration.tiny is None:
        raise TinyModelError(problem or f"{backend} declares no tiny models")
    family, flavour = source.name, declaration.tiny.flavour
    builder_ref = declaration.tiny.builders[family]
    target = cache_dir() / "tiny" / f"{family}-{flavour}-v{BUILD_VERSION}"
    if (target / ".complete").exists():
        return target
    with locked(cache_dir() / "tiny" / f".{family}-{flavour}.lock"):
        if (target / ".complete").exists():
            return target
        builder = _builder(builder_ref)
        scratch = Path(tempfile.mkdtemp(prefix=f".{family}-{flavour}-", dir=target.parent))
        try:
            builder(scratch)
            (scratch / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            scratch.rename(target)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
    return target


def _builder(ref: str) -> Callable[[Path], None]:
    module_name, func_name = ref.split(":")
    func: Callable[[Path], None] = getattr(importlib.import_module(module_name), func_name)
    return func
