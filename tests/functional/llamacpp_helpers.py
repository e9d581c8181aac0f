"""What the llama.cpp tests share: the ``llama-server`` found, and the mark that skips without one."""

from __future__ import annotations

from typing import Any

import pytest

from vlmtui.llamacpp import find_llama_server

FOUND = find_llama_server()
"""``(path, where)`` of the llama-server the tests use; conftest has exported it as $VLMTUI_LLAMA_SERVER."""

skip_without_server = pytest.mark.skipif(
    FOUND is None,
    reason="no llama-server: not on PATH, not in vlmtui's cache and $VLMTUI_LLAMA_SERVER unset "
           "(build it: vlmtui doctor --build-llama-server, 11-35 minutes on 2 cores; or brew install llama.cpp)",
)


def needs_server(test: Any) -> Any:
    """Real llama-server runs: slow, and skipped when there is no binary."""
    return pytest.mark.slow(skip_without_server(test))
