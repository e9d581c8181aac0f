"""Shared fixtures: an isolated cache and data directory, offline, for every test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_IMAGES = ROOT / "sample_images"

# Nothing from the hub at test time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The user's (or CI's) llama-server, found before the session's cache replaces theirs, so the tests and
# every vlmtui they start use it (and the converter cached beside it); unset: the llama.cpp tests skip.
if "VLMTUI_LLAMA_SERVER" not in os.environ:
    from vlmtui.llamacpp import find_llama_server

    _found = find_llama_server()
    if _found is not None:
        os.environ["VLMTUI_LLAMA_SERVER"] = str(_found[0])


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tiny models are built once per test session into a shared cache; logs and remote code go to temp dirs."""
    cache = os.environ.get("VLMTUI_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("cache"))
    os.environ["VLMTUI_CACHE_DIR"] = cache
    os.environ["VLMTUI_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    # Where transformers copies a repo's remote code (read when transformers is first imported, which
    # the tests do lazily, after this): the remote-code tests must not write into the user's cache.
    os.environ.setdefault("HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf-modules")))
