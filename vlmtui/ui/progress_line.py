"""``[n/N] ETA m:ss``: the plain mode's progress on a terminal's stderr while stdout goes to a pipe or a file.

One line, redrawn in place (``\\r``), so the records on stdout stay one per line and the person at the terminal
still sees how far the run is. The ETA is the mean time of the cases ended so far (warm-ups left out) times
the cases left; ``ETA ?`` until one has ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from vlmtui.engine.events import CaseFinished, CaseQueued, CaseStarted, Event, SessionFinished, SessionStarted
from vlmtui.text import one_line


def clock_text(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:03``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressLine:
    """A scheduler subscriber drawing ``[n/N] ETA …  case`` on ``stream`` (a terminal)."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.total = 0
        self.done = 0
        self.current = ""
        self._started: float | None = None
        self._drawn = 0

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far; ``None`` before the first case has ended."""
        if self._started is None or self.done == 0:
            return None
        return (self.clock() - self._started) / self.done * max(self.total - self.done, 0)

    def text(self) -> str:
        """The line as drawn: ``[3/10] ETA 0:42  model/image.png/p0``."""
        eta = self.eta_s()
        left = "?" if eta is None else clock_text(eta)
        return f"[{self.done}/{self.total}] ETA {left}  {one_line(self.current, 60)}".rstrip()

    def __call__(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.total = sum(1 for c in event.cases if not c.get("warmup"))
            self._started = self.clock()
        elif isinstance(event, CaseQueued):
            self.total += 1
        elif isinstance(event, CaseStarted):
            self.current = event.case_id
        elif isinstance(event, CaseFinished):
            if not event.result.warmup:
                self.done += 1
            self.current = ""
        elif isinstance(event, SessionFinished):
            self._clear()
            return
        else:
            return
        self._draw()

    def _draw(self) -> None:
        line = self.text()
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0
