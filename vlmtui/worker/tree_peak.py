"""A managed server's peak memory during one case: its process tree's RSS, polled in a thread while it answers.

The worker's sampler reads the tree every ``sample_ms`` (250 ms by default), and a server case on a small model
is shorter than that (llama-server on tiny Idefics3: 0.12 s), so the case's peak would be whatever the one
reading after it saw. The tree is listed once when the case starts (``children(recursive=True)`` scans /proc:
8 ms a call here) and its members' RSS polled every ``interval_s`` (0.03 ms a process).
"""

from __future__ import annotations

import dataclasses
import threading
from types import TracebackType

import psutil

from vlmtui.worker.backends.base import GenerationStats

POLL_S = 0.01
"""How often the tree's RSS is read during a case."""


class TreePeak:
    """``with TreePeak(pid) as peak: …`` then ``peak.bytes``: the highest RSS sum of ``pid``'s tree meanwhile."""

    def __init__(self, pid: int | None, interval_s: float = POLL_S) -> None:
        self.bytes = 0
        self._interval_s = interval_s
        self._procs: list[psutil.Process] = []
        if pid:
            try:
                root = psutil.Process(pid)
                self._procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                self._procs = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="server-peak")

    def read(self) -> int:
        """The tree's RSS now (a member that has gone counts nothing), and the peak raised to it."""
        total = 0
        for proc in self._procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        self.bytes = max(self.bytes, total)
        return total

    def _poll(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.read()

    def start(self) -> TreePeak:
        """Read now and keep polling until ``stop``."""
        if self._procs:
            self.read()
            self._thread.start()
        return self

    def stop(self) -> int:
        """Stop polling, read once more; the peak."""
        if self._procs and self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self.read()
        return self.bytes

    def __enter__(self) -> TreePeak:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


NO_PEAK = "none"
"""A backend's ``peak_kind`` when no figure of the case can be its peak: the model runs in a server that is not
ours (``base_url``), so the worker's own RSS, the fallback, would be the client's, not the model's."""


def with_tree_peak(stats: GenerationStats, peak_bytes: int | None) -> GenerationStats:
    """``stats`` with the server tree's peak as the case's (``peak_kind = "server-rss"``) when one was read;
    ``None``: there is no server of ours to read, and the case has no peak (``NO_PEAK``)."""
    if peak_bytes is None:
        return dataclasses.replace(stats, peak_memory_bytes=None, extra={**stats.extra, "peak_kind": NO_PEAK})
    if not peak_bytes:
        return stats
    return dataclasses.replace(stats, peak_memory_bytes=peak_bytes, extra={**stats.extra, "peak_kind": "server-rss"})
