"""A model's ``ModelSource`` turned into what a framework loads, inside the worker.

The suite has parsed the source (tiny family, local path, hub repo@revision: wire/source.py); here each
kind is resolved the one way every backend shares — a tiny model is built, a local path must be a
directory, a hub repo comes from the cache or the hub — with one-line ``BackendError``s. Plug-in
backends use these too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vlmtui.wire.source import ModelSource
from vlmtui.worker.backends.base import BackendError
from vlmtui.worker.demo.tiny import TinyModelError, tiny_model_dir
from vlmtui.worker.hub import FETCH_HINT


def offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (env read now, not at hub import time)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(flag.strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags):
        return True
    import huggingface_hub

    return bool(huggingface_hub.is_offline_mode())


def tiny_dir(source: ModelSource, backend: str) -> Path:
    """The folder of a tiny model for ``backend``, built on first use."""
    try:
        return tiny_model_dir(str(source), backend)
    except TinyModelError as exc:
        raise BackendError(str(exc)) from None


def local_dir(source: ModelSource) -> Path:
    """A local source's directory; a missing path or a file is a one-line error."""
    if source.kind == "none":
        raise BackendError("no model path given: set path = \"<hub id | local dir | tiny:<family>>\"")
    path = source.local_path()
    if path.is_dir():
        return path
    if path.exists():
        raise BackendError(f"model path is not a directory: {source}")
    raise BackendError(f"model path not found: {source}")


def model_dir(source: ModelSource, backend: str) -> Path:
    """A tiny or local source's directory (a hub repo is each framework's own business)."""
    return tiny_dir(source, backend) if source.is_tiny else local_dir(source)


def cached_hub_id(source: ModelSource) -> str:
    """A hub repo id a framework may load: cached, or fetchable because the hub may be contacted."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source.name, "config.json", revision=source.revision)
    except ValueError:  # huggingface_hub's HFValidationError: not a valid repo id after all
        raise BackendError(f"model path not found: {source.name}") from None
    if not isinstance(cached, str) and offline():
        raise BackendError(f"{source.name} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {FETCH_HINT}")
    return source.name


def hub_snapshot(source: ModelSource, patterns: Sequence[str]) -> Path:
    """The cached (or freshly downloaded) snapshot of a hub repo at its revision: the files ``patterns`` match.

    A run has fetched the files before the load (engine/downloads.py); this finds them, or fetches what a
    plug-in's own patterns add. A hub failure is the one line vlmtui.worker.hub words for it.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from vlmtui.worker.hub import describe_failure

    try:
        return Path(snapshot_download(source.name, revision=source.revision, allow_patterns=list(patterns)))
    except LocalEntryNotFoundError as exc:
        if constants.HF_HUB_OFFLINE:
            raise BackendError(f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {FETCH_HINT}") \
                from None
        raise BackendError(describe_failure(source.name, source.revision or "main", exc.__cause__ or exc)) from None
    except Exception as exc:  # the hub's refusal (401/403/404, a missing revision) or a disk that filled
        raise BackendError(describe_failure(source.name, source.revision or "main", exc)) from None
