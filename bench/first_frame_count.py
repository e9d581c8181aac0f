"""The first frame in CPU instructions (valgrind) or wall time (a pty): vlmtui beside the bare Textual app.

Wall-clock first frames (bench/tui_bytes.py --first-frames) move with everything else a shared machine runs;
instruction counts do not (callgrind counts the same total for the same program, inputs and environment).
Each side runs in a private tmux pane of 80×24 under ``valgrind --tool=callgrind`` and stops itself right
after its first frame is drawn:

- ``bare``: bench/bare_tui.py's app (one Static);
- ``vlmtui``: ``vlmtui run SUITE`` through the real command line (vlmtui.cli.main); ``--tree DIR`` runs
  another checkout's vlmtui (an older commit's, for before/after).

Each ends (``os._exit``) at the first write to the terminal that holds the queue's border title
(bench/tui_bytes.py's mark; the bare app shows the same text): a frame without the queue does not count.

Python's start, imports, the suite's parse and planning, the app's compose, CSS and the first render all
count; what the engine does after the first frame does not. The ratio is the figure to judge.

``--wall N`` instead launches each side N times (interleaved) on a pseudo-terminal of 80×24 with no tmux
and no valgrind, and times exec → the queue's border title in what it writes (bench/tui_bytes.py's mark):
the wall-clock figure, for a machine where tmux or valgrind is missing (the lent GPU machine) or to
compare machines. vlmtui runs as a user runs it (``python -m vlmtui run SUITE``) and is hung up on after
the frame, as a closed SSH session would.

    python bench/first_frame_count.py [--suite suites/demo.toml] [--label after] [--wall 10]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, save
from bench.first_frame import BARE_ARGV, FIRST_FRAME_MARK, compile_tree, cpu_seconds, side_by_side


def child(which: str, suite: str, log: str, tree: str) -> None:
    """One side, in the pane: run until the first write that holds the mark (the queue's border title), then
    end at once (``os._exit``: what comes after, a quit stopping the engine, is not the first frame's)."""
    sys.path.insert(0, tree)
    from textual.drivers.linux_driver import LinuxDriver

    write = LinuxDriver.write

    def write_then_exit(self: LinuxDriver, data: str) -> None:
        write(self, data)
        if FIRST_FRAME_MARK.search(data.encode()):
            os._exit(0)

    LinuxDriver.write = write_then_exit  # type: ignore[method-assign]
    if which == "bare":
        from bench.bare_tui import Bare

        Bare().run()
        return
    import vlmtui.cli

    sys.argv = ["vlmtui", "run", suite, "--log", log]
    vlmtui.cli.main()


def count(which: str, suite: Path, tmp: Path, tree: str) -> int:
    """Instructions (callgrind's Ir) of one side, start to exit."""
    socket = f"vlmtui-ffcount-{os.getpid()}-{which}"
    out, done = tmp / f"callgrind-{which}.txt", tmp / f"done-{which}"
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={out}",
            sys.executable, __file__, "--child", which, "--suite", str(suite),
            "--log", str(tmp / f"session-{which}.jsonl"), "--tree", tree]
    env = {"HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0", "VLMTUI_DATA_DIR": str(tmp / "data"),
           "VLMTUI_CACHE_DIR": os.environ.get("VLMTUI_CACHE_DIR", "/tmp/vlmtui-dev-cache")}
    command = (f"cd {shlex.quote(str(ROOT))} && env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
               + " " + shlex.join(argv) + f"; touch {done}")
    conf = tmp / "tmux.conf"
    conf.write_text("set -g status off\n")
    subprocess.run(["tmux", "-L", socket, "-f", str(conf), "new-session", "-d", "-x", "80", "-y", "24", command],
                   check=True)
    try:
        deadline = time.monotonic() + 900
        while not done.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{which}: no exit within 15 minutes under valgrind")
            time.sleep(0.5)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    found = re.search(r"Collected : (\d+)", out.read_text())
    if found is None:
        raise RuntimeError(f"{which}: callgrind printed no total:\n{out.read_text()[-2000:]}")
    return int(found.group(1))


def launch(argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24,
           cwd: str | None = None) -> tuple[float, float]:
    """Exec ``argv`` on a new pty; (wall, CPU) seconds until the mark is in its output. Hung up on after."""
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal's size first, as a terminal emulator sets it
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if cwd is not None:
            os.chdir(cwd)  # ``python -m vlmtui`` runs that tree's vlmtui
        os.execve(argv[0], argv, env)
    seen, deadline = b"", start + 120
    try:
        while FIRST_FRAME_MARK.search(seen) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no first frame in 120 s from {shlex.join(argv)}:\n{seen[-500:]!r}")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError as exc:
                    raise RuntimeError(f"{shlex.join(argv)} exited before its first frame: {seen[-500:]!r}") from exc
        return time.monotonic() - start, cpu_seconds(pid)
    finally:
        os.close(fd)  # the hang-up: vlmtui stops its engine and worker itself
        for _ in range(300):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def wall(suite: Path, launches: int, tmp: Path, tree: str) -> dict[str, Any]:
    """Each side ``launches`` times, interleaved: the medians and the ratio."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color", "VLMTUI_DATA_DIR": str(tmp / "data"),
           "COLUMNS": "80", "LINES": "24"}
    sides = {"bare": BARE_ARGV,
             "vlmtui": [sys.executable, "-m", "vlmtui", "run", str(suite), "--log", str(tmp / "logs")]}
    (tmp / "logs").mkdir()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for _ in range(launches):
        for name, argv in sides.items():
            runs[name].append(launch(argv, env, cwd=tree if name == "vlmtui" else None))
    result: dict[str, Any] = {"launches": launches, "size": "80x24", **side_by_side(runs)}
    print(f"first frame, wall ({launches} launches each, medians): vlmtui {result['vlmtui']['median_wall_s']} s "
          f"({result['vlmtui']['median_cpu_s']} s CPU), bare Textual app {result['bare']['median_wall_s']} s "
          f"({result['bare']['median_cpu_s']} s CPU), ratio {result['ratio_wall']}x", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=str(ROOT / "suites" / "demo.toml"))
    parser.add_argument("--label", default="")
    parser.add_argument("--tree", default=str(ROOT), metavar="DIR", help="count the vlmtui of this source tree")
    parser.add_argument("--wall", type=int, default=0, metavar="N",
                        help="wall time on a pty instead, N launches of each side (no tmux, no valgrind)")
    parser.add_argument("--child", choices=["bare", "vlmtui"], help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.suite, args.log, args.tree)
        return
    compile_tree(args.tree)
    with tempfile.TemporaryDirectory(prefix="vlmtui-ffcount-") as name:
        tmp = Path(name)
        if args.wall:
            path = save("first-frame-wall" + (f"-{args.label}" if args.label else ""),
                        {"loadavg_at_start": os.getloadavg(), "tree": args.tree,
                         **wall(Path(args.suite).resolve(), args.wall, tmp, args.tree),
                         "loadavg_at_end": os.getloadavg()})
            print(f"saved {path.relative_to(ROOT)}")
            return
        counts = {which: count(which, Path(args.suite), tmp, args.tree) for which in ("bare", "vlmtui")}
    result: dict[str, Any] = {"suite": str(Path(args.suite).resolve().relative_to(ROOT)), "tree": args.tree,
                              "instructions": counts, "ratio": round(counts["vlmtui"] / counts["bare"], 2)}
    print(f"first frame, instructions: vlmtui {counts['vlmtui'] / 1e9:.2f} G, bare Textual app "
          f"{counts['bare'] / 1e9:.2f} G, ratio {result['ratio']}x")
    path = save("first-frame-count" + (f"-{args.label}" if args.label else ""), result)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
