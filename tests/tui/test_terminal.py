"""``vlmtui run`` in a real terminal: tmux at 80×24 with TERM=xterm-256color, driven by keys like a person."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT
from tests.functional.helpers import write_suite
from tests.tui.helpers import ONE_IMAGE, SMOL, ghost_model

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Tmux:
    """One tmux server of our own (its own socket), one window."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "v")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "v", *keys)

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.2)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux(f"vlmtui-test-{os.getpid()}")
    yield session
    subprocess.run(["tmux", "-L", session.socket, "kill-server"], capture_output=True, check=False)


def vlmtui_processes(log: Path) -> list[psutil.Process]:
    """The vlmtui process writing ``log`` and everything under it (worker, server)."""
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if argv[1:3] == ["-m", "vlmtui"] and str(log) in argv:
            return [proc, *proc.children(recursive=True)]
    return []


def test_run_in_tmux_at_80x24_f_reruns_failures_and_q_exits_1(tmp_path: Path, tmux: Tmux) -> None:
    suite = write_suite(tmp_path, SMOL + ghost_model(tmp_path), images=ONE_IMAGE)
    log, rc = tmp_path / "session.jsonl", tmp_path / "rc"
    command = (f"cd {ROOT} && env TERM=xterm-256color {sys.executable} -m vlmtui run {suite} "
               f"--log {log}; echo $? > {rc}; sleep 60")
    tmux.run("new-session", "-d", "-s", "v", "-x", "80", "-y", "24", command)

    screen = tmux.wait_for(lambda s: "│ done" in s and "✗ fail" in s, "the run to finish")
    for part in ("queue · 4 cases", "output", "memory", "models", "GiB", "smol", "ghost", "r rerun", "q quit"):
        assert part in screen, part
    assert len(screen.splitlines()) <= 24 and max(len(line) for line in screen.splitlines()) <= 80
    processes = vlmtui_processes(log)
    assert len(processes) >= 2, "the app and its worker"

    tmux.keys("f")
    # Queue rows only: once the queue is done the cursor is on the first failure, whose status the output
    # pane shows too.
    tmux.wait_for(lambda s: sum(line.lstrip().startswith("✗ fail ×2") and "ghost" in line
                                for line in s.splitlines()) == 2 and "│ done" in s, "the failed cases to run again")
    tmux.keys("q")
    deadline = time.monotonic() + 30
    while not rc.exists() or not rc.read_text().strip():
        assert time.monotonic() < deadline, f"vlmtui did not exit; the screen:\n{tmux.screen()}"
        time.sleep(0.2)
    assert rc.read_text().strip() == "1", "the ghost model's cases failed: the README's exit code 1"
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
