"""Tiny randomly initialised models, built offline on first use and cached.

``tiny:<family>`` in a suite resolves here. The models are real architectures loaded and run by the
real library code, with random weights: their output is gibberish, their timing and memory behaviour
are real. Builders import torch/transformers/mlx, so this runs inside the worker only.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import platformdirs

BUILD_VERSION = 2
"""Bump when a builder changes, so stale cached models are rebuilt."""

# family -> flavour -> "module:function" that writes the model into an empty directory.
# flavour "hf" is the Hugging Face layout transformers loads; "mlx" is what mlx_vlm.load takes.
BUILDERS: dict[str, dict[str, str]] = {
    "idefics3": {
        "hf": "vlmtui.worker.demo.tiny_hf:build_idefics3",
        "mlx": "vlmtui.worker.demo.tiny_mlx:build_idefics3",
    },
    "llava-next": {
        "hf": "vlmtui.worker.demo.tiny_hf:build_llava_next",
        "mlx": "vlmtui.worker.demo.tiny_mlx:build_llava_next",
    },
    "moondream2": {
        "mlx": "vlmtui.worker.demo.tiny_mlx:build_moondream2",
    },
    # LLaVA-1.5 (model_type "llava"): the family whose mlx-vlm processor trips over transformers 5.
    "llava-1.5": {
        "mlx": "vlmtui.worker.demo.tiny_mlx:build_llava15",
    },
}
ALIASES = {
    "smolvlm": "idefics3", "llava": "llava-next", "llava_next": "llava-next", "llava15": "llava-1.5",
    "moondream": "moondream2",
}

FLAVOUR_OF_BACKEND = {"transformers": "hf", "mlx-vlm": "mlx", "openai": "mlx"}


class TinyModelError(Exception):
    """A ``tiny:`` name that does not exist for the backend; ``str()`` is one line."""


def cache_dir() -> Path:
    """Where tiny models live: ``$VLMTUI_CACHE_DIR`` or the platform's user cache directory."""
    override = os.environ.get("VLMTUI_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("vlmtui"))


def family_of(path: str) -> str:
    """The canonical family of ``tiny:<family>``."""
    name = path.removeprefix("tiny:").strip().lower()
    return ALIASES.get(name, name)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tiny_model_dir(path: str, backend: str) -> Path:
    """The directory of the tiny model named by ``path`` for ``backend``, built first if needed."""
    family = family_of(path)
    flavour = FLAVOUR_OF_BACKEND.get(backend, "hf")
    flavours = BUILDERS.get(family)
    if flavours is None:
        known = ", ".join(f"tiny:{f}" for f in BUILDERS)
        raise TinyModelError(f"unknown tiny model {path!r} (known: {known})")
    if flavour not in flavours:
        raise TinyModelError(f"{path} has no {backend} build (it exists for: "
                             f"{', '.join(b for b, f in FLAVOUR_OF_BACKEND.items() if f in flavours)})")
    target = cache_dir() / "tiny" / f"{family}-{flavour}-v{BUILD_VERSION}"
    if (target / ".complete").exists():
        return target
    with _locked(cache_dir() / "tiny" / f".{family}-{flavour}.lock"):
        if (target / ".complete").exists():
            return target
        builder = _builder(flavours[flavour])
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
