"""The worker's sampler thread: its memory every ``sample_ms`` while a model loads or a case runs, every
``VLMTUI_IDLE_SAMPLE_MS`` (1 s) otherwise, as the parent's guard loop does.

Idle, nothing the worker does can raise its memory, and four samples a second were four JSON lines a second
for the parent to parse, forever, on a dashboard left open (4.00 lines/s idle, 4.17 with a model loaded;
1.00 now). A load or a case wakes the sampler at once: the guard sees a load from its first sample, never up
to an idle interval late.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from vlmtui.wire import protocol as p
from vlmtui.wire.sampling import idle_sample_ms_from_env


class MemorySampler:
    """Sends ``sample()`` at the full rate inside ``working()``, at the idle rate outside it."""

    def __init__(self, sample: Callable[[], p.Memory], send: Callable[[p.Event], None],
                 on_error: Callable[[Exception], None]) -> None:
        self._sample = sample
        self._send = send
        self._on_error = on_error
        self.sample_s = 0.25
        """The full rate (the ``Load``'s ``sample_ms``)."""
        self.idle_s = idle_sample_ms_from_env() / 1000
        self._working = False
        self._work_started = threading.Event()
        """Wakes the sampler out of its idle wait the moment a load or a case starts."""

    def start(self) -> None:
        """Run the sampler in a daemon thread."""
        threading.Thread(target=self._loop, daemon=True, name="sampler").start()

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """A load or a case: sampled at the full rate from its first moment."""
        self._working = True
        self._work_started.set()
        try:
            yield
        finally:
            self._working = False

    def _loop(self) -> None:
        while True:
            if self._working:
                time.sleep(self.sample_s)
            else:
                self._work_started.wait(max(self.idle_s, self.sample_s))
            self._work_started.clear()
            try:
                self._send(self._sample())
            except Exception as exc:  # a probe must never take the worker down
                self._on_error(exc)
                time.sleep(1.0)
