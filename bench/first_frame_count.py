"""The first frame in CPU instructions, counted by valgrind: vlmtui beside the bare Textual app, whatever the load.

Wall-clock first frames (bench/tui_bytes.py --first-frames) move with everything else a shared machine runs;
instruction counts do not (callgrind counts the same total for the same program, inputs and environment).
Each side runs in a private tmux pane of 80×24 under ``valgrind --tool=callgrind`` and stops itself right
after its first frame is drawn:

- ``bare``: bench/bare_tui.py's app (one Static), exiting after its first refresh;
- ``vlmtui``: ``vlmtui run SUITE`` through the real command line (vlmtui.cli.main), the app's mount wrapped
  so that the process ends (``os._exit``) right after the first refresh that drew the queue's rows (a frame
  before them would not count as the dashboard's first); ``--tree DIR`` runs another
  checkout's vlmtui (an older commit's, for before/after).

Python's start, imports, the suite's parse and planning, the app's compose, CSS and the first render all
count; what the engine does after the first frame does not. The ratio is the figure to judge.

    python bench/first_frame_count.py [--suite suites/demo.toml] [--label after]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, save


def child(which: str, suite: str, log: str, tree: str) -> None:
    """One side, in the pane: draw the first frame, then exit."""
    sys.path.insert(0, tree)
    if which == "bare":
        from bench.bare_tui import Bare

        class Once(Bare):
            def on_mount(self) -> None:
                self.call_after_refresh(os._exit, 0)

        Once().run()
        return
    import vlmtui.cli
    from vlmtui.ui.tui.app import VlmApp

    mount = VlmApp.on_mount

    def exit_once_queue_drawn(self: VlmApp) -> None:
        # Out at once: what a quit does next (stopping the engine) is not the first frame's.
        if self.dashboard.table.row_count:
            os._exit(0)
        self.call_after_refresh(exit_once_queue_drawn, self)  # a frame without the queue is not the first

    async def on_mount(self: VlmApp) -> None:
        await mount(self)
        self.call_after_refresh(exit_once_queue_drawn, self)

    VlmApp.on_mount = on_mount  # type: ignore[method-assign]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=str(ROOT / "suites" / "demo.toml"))
    parser.add_argument("--label", default="")
    parser.add_argument("--tree", default=str(ROOT), metavar="DIR", help="count the vlmtui of this source tree")
    parser.add_argument("--child", choices=["bare", "vlmtui"], help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.suite, args.log, args.tree)
        return
    with tempfile.TemporaryDirectory(prefix="vlmtui-ffcount-") as name:
        tmp = Path(name)
        counts = {which: count(which, Path(args.suite), tmp, args.tree) for which in ("bare", "vlmtui")}
    result: dict[str, Any] = {"suite": str(Path(args.suite).resolve().relative_to(ROOT)), "tree": args.tree,
                              "instructions": counts, "ratio": round(counts["vlmtui"] / counts["bare"], 2)}
    print(f"first frame, instructions: vlmtui {counts['vlmtui'] / 1e9:.2f} G, bare Textual app "
          f"{counts['bare'] / 1e9:.2f} G, ratio {result['ratio']}x")
    path = save("first-frame-count" + (f"-{args.label}" if args.label else ""), result)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
