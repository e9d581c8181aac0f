"""A model's ``model_type``, read in the vlmtui process before any load: plain JSON, no framework.

Where the config can be read now — a tiny family (from the shared table), a local directory, or the
Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME`` honoured) — the plan knows what the model can be asked
before its worker starts, so a capability skip holds even when the load later fails. Elsewhere (a
repo not downloaded yet, a server's model) it is ``None`` and the worker's ``Loaded`` tells.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmtui.memory.preflight import hub_cache_dir
from vlmtui.wire.capabilities import TINY_MODEL_TYPES
from vlmtui.wire.spec import ModelSpec


def read_model_type(model: ModelSpec) -> str | None:
    """The ``model_type`` of the model's config.json where it can be read without loading, else ``None``."""
    source = model.source
    if source.is_tiny:
        return TINY_MODEL_TYPES.get(source.name)
    if source.is_local:
        config: Path | None = source.local_path() / "config.json"
    elif source.is_hub:
        config = _cached_config(source.name, source.revision)
    else:
        return None
    if config is None:
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if not isinstance(model_type, str) or not model_type.strip():
        return None
    return model_type.strip().lower()


def _cached_config(repo_id: str, revision: str | None) -> Path | None:
    """config.json of ``repo_id`` at ``revision`` in the local hub cache; never the network."""
    try:
        from huggingface_hub import try_to_load_from_cache  # ~0.25 s to import: only hub models need it
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir(), revision=revision)
    except ValueError:  # not a valid repo id after all
        return None
    return Path(found) if isinstance(found, str) else None
