"""Model backends. Each module imports its framework lazily, inside the worker process only."""

from __future__ import annotations

import importlib

from vlmtui.worker.backends.base import Backend, BackendError

_MODULES = {
    "transformers": ("vlmtui.worker.backends.transformers", "TransformersBackend"),
    "mlx-vlm": ("vlmtui.worker.backends.mlx_vlm", "MlxVlmBackend"),
    "openai": ("vlmtui.worker.backends.openai", "OpenAIBackend"),
}


def backend_class(name: str) -> type[Backend]:
    """The backend class for a suite's ``backend = "…"`` value (importing its module, not its framework)."""
    module_name, class_name = _MODULES[name]
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, class_name)
    return cls


__all__ = ["Backend", "BackendError", "backend_class"]
