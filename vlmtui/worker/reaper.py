"""Run a server in its own process group and stop that whole group when the reaper's owner goes away.

``python -m vlmtui.worker.reaper --owner PID -- ARGV...`` starts ``ARGV`` in a new session (so its group is
exactly the server and whatever it spawns), writes ``server-pid N`` on stdout, then watches its stdin:
EOF means the owner closed it or died (kill -9 included), and the group is stopped — SIGTERM, a grace
period, then SIGKILL. SIGTERM/SIGINT sent to the reaper stop the group the same way (unless ignored
when the reaper started). On Linux a parent-death signal wakes it at once as well; everywhere, a
changed parent pid counts as the owner's death. The server's output goes to the reaper's stderr.
Standard library only, so it starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from types import FrameType

GRACE_S = 3.0
"""How long the group gets between SIGTERM and SIGKILL."""
POLL_S = 0.1
_PR_SET_PDEATHSIG = 1
_PDEATH_SIGNAL = signal.SIGUSR2
"""The parent-death signal: a dedicated one, as Linux also sends it when just the spawning thread exits."""


def _set_parent_death_signal(sig: int) -> None:
    """Ask Linux to send ``sig`` when our parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(server: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_s: float = GRACE_S) -> None:
    """Send ``sig`` to the server's group, wait up to ``grace_s`` for it to empty, then SIGKILL it."""
    pgid = server.pid  # the server leads its own session, so its pid is the group id
    _signal_group(pgid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        server.poll()  # reap the leader, or its zombie keeps the group "alive"
        if not group_alive(pgid):
            return
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    server.wait()
    deadline = time.monotonic() + grace_s
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _child_setup() -> None:
    # Runs in the forked server before exec: if the reaper itself is SIGKILLed, the server still goes.
    _set_parent_death_signal(signal.SIGTERM)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run(argv: list[str], owner: int) -> int:
    """Start ``argv`` and babysit it; returns the reaper's exit code."""
    stop_signal: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_signal.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, _PDEATH_SIGNAL):
        # An inherited SIG_IGN stays (the worker ignores Ctrl-C, which belongs to vlmtui); the server
        # inherits it too.
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, on_signal)
    _set_parent_death_signal(_PDEATH_SIGNAL)
    if os.getppid() != owner:  # the owner died before the parent-death signal was armed
        return 0
    try:
        server = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(),
            start_new_session=True,
            preexec_fn=_child_setup,  # the reaper is single-threaded, so preexec_fn is safe here
        )
    except OSError as exc:
        print(f"cannot start {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    try:
        sys.stdout.write(f"server-pid {server.pid}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        stop_group(server)
        return 0
    stdin_fd = sys.stdin.fileno()
    while True:
        for signum in stop_signal:
            if signum != _PDEATH_SIGNAL or os.getppid() != owner:
                stop_group(server, signal.SIGTERM if signum == _PDEATH_SIGNAL else signum)
                return 0
        stop_signal.clear()
        if os.getppid() != owner:
            stop_group(server)
            return 0
        if server.poll() is not None:
            stop_group(server)  # whatever it left behind in its group
            return _exit_code(server.returncode)
        try:
            ready, _, _ = select.select([stdin_fd], [], [], POLL_S)
        except InterruptedError:
            continue
        if ready and not os.read(stdin_fd, 4096):  # EOF: the owner closed the pipe or died
            stop_group(server)
            return 0


def main() -> None:
    """Entry point of ``python -m vlmtui.worker.reaper``."""
    parser = argparse.ArgumentParser(prog="python -m vlmtui.worker.reaper", description=__doc__)
    parser.add_argument("--owner", type=int, required=True, help="pid of the process that owns our stdin")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the server's argv")
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("no server command given")
    sys.exit(run(argv, args.owner))


if __name__ == "__main__":
    main()
