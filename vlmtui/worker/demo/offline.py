"""A ``tiny:`` model's load never touches the network.

mlx-vlm 0.7.10's Moondream2 processor asks the hub for ``moondream/starmie-v1``'s tokenizer whatever the
model folder holds; with no network and no offline flag that load took 78.6 s here (46 s on a Mac) instead
of 27.8 s with HF_HUB_OFFLINE=1 set (both on a 2-core box at load average 8; ~5 s idle), retrying the hub
while the dashboard said only "loading"; with this, 29.5 s. A tiny model brings its own tokenizer
(demo/tokenizer.py), so its load runs with the hub switched off: ``HF_HUB_OFFLINE`` in the environment (for
a server the load starts) and in huggingface_hub's constants, which huggingface_hub and transformers read on
each request (``is_offline_mode``); both are put back afterwards, so a later hub model downloads as usual.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Within the block, no hub request leaves this process (nor a process it starts)."""
    saved_env = {name: os.environ.get(name) for name in _FLAGS}
    for name in _FLAGS:
        os.environ[name] = "1"
    constants = _hub_constants()
    saved_flag = getattr(constants, "HF_HUB_OFFLINE", None) if constants is not None else None
    if constants is not None:
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010 (a module attribute mypy cannot see)
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if constants is not None:
            setattr(constants, "HF_HUB_OFFLINE", saved_flag)  # noqa: B010


def _hub_constants() -> ModuleType | None:
    """huggingface_hub's constants module (imported here if need be), or ``None`` where it is not installed."""
    if "huggingface_hub.constants" not in sys.modules:
        try:
            import huggingface_hub.constants  # noqa: F401 (~0.1 s; every tiny build imports it anyway)
        except ImportError:
            return None
    return sys.modules["huggingface_hub.constants"]
