"""The real worker subprocess driven line by line through the protocol, with no engine in between."""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.conftest import ROOT
from vlmtui.wire import protocol as p


class WorkerDriver:
    """``python -m vlmtui.worker``: send commands, wait for events; tokens are kept per case."""

    def __init__(self, argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            list(argv or [sys.executable, "-m", "vlmtui.worker"]), cwd=ROOT, env=env or dict(os.environ),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self.events: queue.Queue[p.Event | None] = queue.Queue()
        self.tokens: dict[str, list[str]] = collections.defaultdict(list)
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.events.put(p.decode_event(line))
        self.events.put(None)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip())

    def send(self, command: p.Command) -> None:
        """Write one command line."""
        assert self.process.stdin is not None
        self.process.stdin.write(p.encode(command))
        self.process.stdin.flush()

    def wait_for(self, *types: type[Any], timeout_s: float = 120.0) -> Any:
        """The next event of one of ``types``; tokens are recorded on the way."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {[t.__name__ for t in types]} in {timeout_s} s; stderr: "
                                     f"{list(self.stderr)[-5:]}") from None
            if event is None:
                raise AssertionError(f"the worker exited ({self.process.wait()}): {list(self.stderr)[-5:]}")
            if isinstance(event, p.Token):
                self.tokens[event.case_id].append(event.text)
            if isinstance(event, types):
                return event

    def close(self) -> None:
        """Close stdin (the worker exits at once) and reap it."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
