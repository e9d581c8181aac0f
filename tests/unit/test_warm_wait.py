"""A load waits for the warm-up thread's imports (two threads importing transformers at once broke a load)."""

from __future__ import annotations

import threading
import time

from vlmtui.worker.warm import wait_for_warming


def test_a_load_waits_until_the_warm_up_imports_are_done() -> None:
    done = threading.Event()

    def imports() -> None:
        time.sleep(0.3)
        done.set()

    thread = threading.Thread(target=imports)
    thread.start()
    wait_for_warming(thread, lambda: False)
    assert done.is_set()


def test_a_sigterm_ends_the_wait() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    started = time.monotonic()
    wait_for_warming(thread, lambda: time.monotonic() - started > 0.2)
    assert thread.is_alive() and time.monotonic() - started < 5
    release.set()


def test_a_worker_not_started_ahead_does_not_wait() -> None:
    wait_for_warming(None, lambda: False)
