"""The next model's worker, started while the current model's last cases run so its framework import is hidden.

Starting a worker and importing torch or mlx costs seconds per model (4.8 s for torch and transformers, 9.5 s
for mlx_vlm on a 2-core machine). A spare worker is started with ``VLMTUI_WARM_BACKEND`` set and imports
while the current model finishes; it loads nothing. The session hands it the next ``Load`` only after the
current worker has unloaded its model and exited, so its memory is back and the guard never sees two models
resident. Until then what the spare says is kept from the session (its memory samples are not the running
model's); its warm-up line becomes a notice.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence

from vlmtui.engine.events import Event, Notice
from vlmtui.engine.worker_client import WorkerClient, WorkerRefused, terminate_pid
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import ModelSpec

WARM_ENV = "VLMTUI_WARM_BACKEND"
"""Read by the worker (vlmtui/worker/warm.py): the backend whose framework it imports right after its hello."""


class SpareWorker:
    """A worker process started ahead of its model, importing ``backend``'s framework."""

    def __init__(self, backend: str, emit: Callable[[Event], None], argv: Sequence[str] | None,
                 env: dict[str, str] | None, term_grace_s: float) -> None:
        self.backend = backend
        self._emit = emit
        self.started_at = time.time()
        """When the spare was started (wall clock, as events' times)."""
        self.client = WorkerClient(self._on_event, self._on_exit, argv,
                                   {**(os.environ if env is None else env), WARM_ENV: backend},
                                   term_grace_s=term_grace_s)
        self._start = asyncio.create_task(self._start_quietly(), name=f"spare-worker-{backend}")

    async def _start_quietly(self) -> bool:
        try:
            await self.client.start()
        except (WorkerRefused, OSError):
            return False  # the session starts its own worker and says why it cannot
        return self.client.usable

    def _on_event(self, message: p.Event) -> None:
        if isinstance(message, p.Log):
            self._emit(Notice(message.level, f"next worker: {message.message}"))

    def _on_exit(self, returncode: int | None) -> None:
        """The spare died before it was needed: the next load starts a fresh worker instead."""

    async def take(self, on_event: Callable[[p.Event], None],
                   on_exit: Callable[[int | None], None]) -> WorkerClient | None:
        """The spare as the session's worker from now on (its events go to the session), or None if it died."""
        if not await self._start or not self.client.usable:
            await self.discard()
            return None
        self.client.hand_over(on_event, on_exit)
        return self.client

    async def discard(self) -> None:
        """Stop the spare (it holds no model: it exits at once)."""
        if not self._start.done():
            await self._start
        await self.client.stop()

    def end_now(self) -> None:
        """SIGTERM, then SIGKILL; blocks (for the hang-up watchdog's thread)."""
        pid = self.client.pid
        if pid is not None and self.client.alive:
            terminate_pid(pid, self.client.term_grace_s)


BRINGS = {"mlx-vlm": ("transformers",)}
"""Backends whose framework another's import brings along: ``import mlx_vlm`` imports torch and transformers
(mlx-vlm 0.x), so a worker that loaded an mlx-vlm model loads a transformers one without a spare."""


WARM_SWITCH = "VLMTUI_WARM_WORKERS"
"""``1`` or ``0`` turns warm-ups on or off whatever the machine."""
MIN_CORES = 4
"""Below this many cores warm-ups are off by default: on a loaded 2-core machine a spare's import (15-26 s of
CPU for mlx_vlm with torch and transformers) competes with the model running beside it, while switching
framework inside one worker cost 0.4-1.1 s there (bench/results/warm-workers-*.json)."""


def warm_by_default(environ: Mapping[str, str] | None = None, cores: int | None = None) -> bool:
    """Whether to start workers ahead: ``VLMTUI_WARM_WORKERS`` if set, else on a machine of ``MIN_CORES`` or more."""
    env = os.environ if environ is None else environ
    switch = env.get(WARM_SWITCH, "").strip()
    if switch in ("0", "1"):
        return switch == "1"
    return (cores if cores is not None else os.cpu_count() or 1) >= MIN_CORES


class Spares:
    """At most one spare worker: started for the next model's backend, claimed by the session at the switch."""

    def __init__(self, emit: Callable[[Event], None], argv: Sequence[str] | None, env: dict[str, str] | None,
                 term_grace_s: float) -> None:
        self._emit = emit
        self._argv = argv
        self._env = env
        self._term_grace_s = term_grace_s
        self.enabled = warm_by_default()
        """Whether workers are started ahead (False: every switch loads in the current worker, as before)."""
        self.imported: set[str] = set()
        """The backends the current worker has loaded a model with: their frameworks are imported there."""
        self._spare: SpareWorker | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def spare(self) -> SpareWorker | None:
        """The worker started ahead, not yet taken into use."""
        return self._spare

    def warm(self, upcoming: ModelSpec | None, current_backend: str) -> None:
        """Start a worker for the ``upcoming`` model's backend now, unless the worker that runs
        ``current_backend``'s model has it imported already (it then loads the model itself). A spare for a
        third backend is stopped."""
        backend = upcoming.backend if upcoming is not None else current_backend
        if not self.enabled or backend == current_backend or backend in self.imported:
            return
        if self._spare is not None and self._spare.backend in (backend, current_backend):
            return  # warming already, or warmed for the model about to load (the next one warms after its switch)
        self.discard()
        self._spare = SpareWorker(backend, self._emit, self._argv, self._env, self._term_grace_s)

    def loaded(self, backend: str) -> None:
        """The current worker loaded a model of ``backend``: that framework, and what it brings, is imported there."""
        self.imported.update((backend, *BRINGS.get(backend, ())))

    def claim(self, backend: str | None) -> SpareWorker | None:
        """The spare warmed for ``backend``, taken out; None when there is none for it, or when the current
        worker has that framework imported and goes on."""
        if self._spare is None or self._spare.backend != backend or backend in self.imported:
            return None
        spare, self._spare = self._spare, None
        return spare

    async def succeed(self, old: WorkerClient | None, spare: SpareWorker | None,
                      on_event: Callable[[p.Event], None],
                      on_exit: Callable[[int | None], None]) -> WorkerClient | None:
        """Retire ``old`` and wait until it has gone, then take ``spare`` into use (None: start a fresh worker).

        A worker a spare replaces has unloaded its model already: it exits by itself (its memory given back)
        before the spare is sent any ``Load``, so two models are never resident. One on its way out is ended.
        """
        if old is not None and old.usable:
            await old.stop()
        elif old is not None and old.alive:
            old.terminate()
            await old.exited.wait()
        return await spare.take(on_event, on_exit) if spare is not None else None

    def discard(self) -> None:
        """Stop the spare, if any, without waiting."""
        spare, self._spare = self._spare, None
        if spare is not None:
            task = asyncio.get_running_loop().create_task(spare.discard())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """Stop the spare and wait until every discarded one has exited."""
        self.discard()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def end_now(self) -> None:
        """End the spare from any thread, blocking."""
        if self._spare is not None:
            self._spare.end_now()
