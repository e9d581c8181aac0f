"""A worker started ahead of its model: it imports the model's framework while another worker's cases run.

The engine starts the next model's worker with ``VLMTUI_WARM_BACKEND`` naming its backend while the current
model's last cases run; the worker imports that backend and its framework in a thread right after its hello
and says how long it took. Only imports: no weights are read until the engine sends ``Load``, which it does
after the previous worker has unloaded its model and exited (its memory given back).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable

from vlmtui.plugins import find_backend
from vlmtui.wire import protocol as p
from vlmtui.worker.backends import backend_class
from vlmtui.worker.backends.base import one_line

WARM_ENV = "VLMTUI_WARM_BACKEND"
"""The environment variable naming the backend a fresh worker imports before its ``Load`` arrives."""

WARM_MODULES: dict[str, tuple[str, ...]] = {
    # transformers' top-level import is lazy: the auto classes are what a load pulls in (4.8 s for torch and
    # transformers, 9.0 s with the auto modelling module, on this 2-core machine).
    "transformers": ("torch", "transformers", "transformers.models.auto.modeling_auto",
                     "transformers.models.auto.processing_auto"),
    "mlx-vlm": ("mlx.core", "mlx_vlm", "mlx_vlm.utils"),  # 9.5 s for mlx_vlm here
}
"""Modules worth importing ahead for a built-in backend; a plug-in's declared ``packages`` otherwise."""


def warm(backend: str) -> tuple[list[str], float]:
    """Import ``backend``'s class and framework; the modules imported and the seconds it took.

    Runs in a thread beside the worker's command loop: a ``Load`` arriving meanwhile waits on Python's
    import locks for the module half imported, never imports it twice.
    """
    started = time.perf_counter()
    backend_class(backend)
    names = WARM_MODULES.get(backend) or find_backend(backend).packages
    imported = []
    for name in names:
        importlib.import_module(name)
        imported.append(name)
    return imported, time.perf_counter() - started


def start_warming(send: Callable[[p.Event], None]) -> threading.Thread | None:
    """If this worker was started ahead of its model (``VLMTUI_WARM_BACKEND``), warm it in a thread and say
    how long the imports took (a ``Log`` the engine shows as a notice); the thread, for ``Load`` to wait on."""
    backend = os.environ.get(WARM_ENV)
    if not backend:
        return None
    thread = threading.Thread(target=_warm_and_tell, args=(backend, send), daemon=True, name="warm")
    thread.start()
    return thread


def wait_for_warming(thread: threading.Thread | None, stopping: Callable[[], bool]) -> None:
    """Let the warm-up's imports finish before a load imports the same packages.

    Python's per-module import locks do not make two threads importing one package's web of modules safe:
    transformers' lazy modules, imported from the warm-up thread and the load at once, gave the load
    "module 'transformers' has no attribute 'AutoConfig'" (a module met half initialised). Waiting costs
    nothing the load would not have waited for anyway; ``stopping`` ends the wait for a SIGTERM.
    """
    while thread is not None and thread.is_alive() and not stopping():
        thread.join(0.1)


def _warm_and_tell(backend: str, send: Callable[[p.Event], None]) -> None:
    try:
        modules, seconds = warm(backend)
    except Exception as exc:  # the load says what is wrong in its own words; warming only saves time
        send(p.Log("warning", f"warming {backend} failed: {one_line(exc)}"))
        return
    send(p.Log("info", f"warmed {backend}: imported {', '.join(modules)} in {seconds:.2f} s"))
