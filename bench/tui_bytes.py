"""What the dashboard costs a terminal: bytes/s written and CPU of the vlmtui process, per phase, in tmux.

A tiny-model suite (the demo's first transformers and mlx-vlm models over the sample images, then a paced
server that streams like a small real model) runs under ``vlmtui run`` in a detached tmux session of a given
size on a private tmux server. ``tmux pipe-pane`` appends everything the app writes to the terminal to a
file; its size is polled, and the vlmtui process's CPU time read from /proc/<pid>/stat. Phases:

- ``paused``: space pressed once the first case starts; once that case has ended the queue is paused
  (cases left, nothing running) and is measured for ``--phase-s``;
- ``queue``: space again; until the tiny models' cases have run (each ends within a second: what is sent
  is mostly the queue's rows changing, a model switch, the summary);
- ``streaming``: the last model, an OpenAI-compatible server (bench/ui_lag.py's paced server) streaming one
  word a chunk at 40 tokens a second for 6 s a case, until every case has ended;
- ``idle``: ``--settle-s`` after the last case ended, for ``--phase-s`` (the queue done, nobody typing).

Also: the first frame (exec → the queue's border title in the terminal output), and which mouse modes the
app switched on (1000 click, 1002 drag, 1003 any motion). ``q`` quits; the exit code must be 0.

    python bench/tui_bytes.py [--sizes 80x24 120x40] [--phase-s 10] [--tokens 96] [--label after]
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
from bench.first_frame import BARE_ARGV, FIRST_FRAME_MARK, compile_tree, cpu_seconds, side_by_side

POLL_S = 0.05
MOUSE_MODES = {"1000": "click", "1002": "drag", "1003": "any-motion", "1006": "sgr"}
TARGETS = {"streaming_kbps": 20.0, "idle_kbps": 1.0, "idle_cpu_pct": 1.0, "first_frame_s": 0.3}
SUITE = """name = "tui-bytes"
images = [{images}]
prompts = ["Describe this image in one sentence."]
text_prompts = ["What is the capital of France?"]
max_tokens = {tokens}
temperature = 0.0

[guard]
budget = "auto"
sample_ms = 250

[[models]]
id = "smolvlm-tiny-hf"
backend = "transformers"
path = "tiny:idefics3"

[[models]]
id = "smolvlm-tiny-mlx"
backend = "mlx-vlm"
path = "tiny:idefics3"

[[models]]
id = "paced-server"
backend = "openai"
command = ["{{python}}", "{ui_lag}", "--serve", "{{port}}", "--rate", "{rate}"]
max_tokens = {paced_tokens}
"""
PACED_RATE = 40.0
"""Tokens a second the paced server (bench/ui_lag.py's) streams, one word a chunk: a small model's pace."""
PACED_S = 6.0
"""How long each of its cases streams."""


class Pane:
    """One vlmtui run in its own tmux server, its terminal output piped into a file."""

    def __init__(self, tmp: Path, cols: int, rows: int, extra_args: list[str], tree: Path = ROOT,
                 argv: list[str] | None = None) -> None:
        self.tmp, self.cols, self.rows, self.tree = tmp, cols, rows, tree
        self.argv = argv
        """Run this instead of vlmtui (the bare Textual baseline)."""
        self.socket = f"vlmtui-bytes-{os.getpid()}-{cols}x{rows}"
        self.out = tmp / f"pane-{cols}x{rows}.bin"
        self.log = tmp / f"session-{cols}x{rows}.jsonl"
        self.t0_file = tmp / f"t0-{cols}x{rows}"
        self.extra_args = extra_args
        self.pid = 0

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True).stdout

    def start(self, suite: Path) -> None:
        env = {"HF_HUB_OFFLINE": "1", "VLMTUI_DATA_DIR": str(self.tmp / "data"),
               "VLMTUI_CACHE_DIR": os.environ.get("VLMTUI_CACHE_DIR", "/tmp/vlmtui-dev-cache")}
        argv = self.argv or [sys.executable, "-m", "vlmtui", "run", str(suite), "--log", str(self.log),
                             *self.extra_args]
        # The app is started only once the pipe is in place (it waits for a file), so no byte goes unseen.
        go = self.tmp / f"go-{self.cols}x{self.rows}"
        command = (f"while [ ! -e {go} ]; do sleep 0.01; done; date +%s.%N > {self.t0_file}; "
                   f"cd {shlex.quote(str(self.tree))} && exec env "
                   + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(argv))
        conf = self.tmp / "tmux.conf"
        conf.write_text("set -g status off\n")
        self.tmux("-f", str(conf), "new-session", "-d", "-s", "bench", "-x", str(self.cols),
                  "-y", str(self.rows), command)
        self.tmux("pipe-pane", "-t", "bench", "-o", f"cat >> {shlex.quote(str(self.out))}")
        self.pid = int(self.tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())
        go.touch()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "bench", *keys)

    def bytes(self) -> int:
        try:
            return self.out.stat().st_size
        except FileNotFoundError:
            return 0

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return Path(f"/proc/{self.pid}").exists()

    def events(self) -> list[str]:
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return re.findall(r'"event": "(\w+)"', text)

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def wait_for(condition: Any, timeout: float, what: str, pane: Pane) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what} ({pane.cols}x{pane.rows})")
        if not pane.alive():
            raise RuntimeError(f"vlmtui exited while waiting for {what}")
        time.sleep(POLL_S)
    return time.monotonic()


def measure(pane: Pane, seconds: float | None, until: Any = None) -> dict[str, float]:
    """Bytes/s and % of a core over ``seconds``, or until ``until()`` is true."""
    b0, c0, t0 = pane.bytes(), pane.cpu_s(), time.monotonic()
    while (time.monotonic() - t0 < seconds) if seconds is not None else not until():
        time.sleep(POLL_S)
    b1, c1, t1 = pane.bytes(), pane.cpu_s(), time.monotonic()
    span = t1 - t0
    return {"seconds": round(span, 2), "bytes": b1 - b0, "offsets": [b0, b1], "kbps": round((b1 - b0) / span / 1000, 2),
            "cpu_pct": round(100 * (c1 - c0) / span, 2)}


def run_size(tmp: Path, suite: Path, cols: int, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    pane = Pane(tmp, cols, rows, args.extra, Path(args.tree))
    tiny = len(list((ROOT / "sample_images").iterdir())) * 2 + 2
    total = tiny + tiny // 2
    try:
        pane.start(suite)
        first = wait_for(lambda: pane.out.exists() and FIRST_FRAME_MARK.search(pane.out.read_bytes()) is not None,
                         60, "the first frame", pane)
        first_cpu_s = pane.cpu_s()  # CPU time to the first frame: less at the mercy of a busy machine than wall time
        t0 = float(pane.t0_file.read_text())
        first_frame_s = time.time() - (time.monotonic() - first) - t0
        wait_for(lambda: "case_start" in pane.events(), 180, "the first case", pane)
        pane.keys("Space")
        wait_for(lambda: "case_end" in pane.events(), 180, "the first case's end", pane)
        time.sleep(args.settle_s)
        paused = measure(pane, args.phase_s)
        pane.keys("Space")
        # The tiny models' cases end within a second each: their bytes are the queue's events, not the stream.
        queue = measure(pane, None, until=lambda: pane.events().count("case_start") > tiny or not pane.alive())
        streaming = measure(pane, None, until=lambda: pane.events().count("case_end") >= total or not pane.alive())
        time.sleep(args.settle_s)
        idle = measure(pane, args.phase_s)
        head = pane.out.read_bytes()
        modes = sorted({MOUSE_MODES.get(m.decode(), m.decode()) for m in re.findall(rb"\x1b\[\?(100[0-6])h", head)})
        pane.keys("q")
        wait_for(lambda: not pane.alive(), 60, "the quit", pane)
        result = {"size": f"{cols}x{rows}", "first_frame_s": round(first_frame_s, 3),
                  "first_frame_cpu_s": round(first_cpu_s, 3), "paused": paused, "queue": queue,
                  "streaming": streaming, "idle": idle, "mouse_modes": modes, "cases": total,
                  "events": {e: pane.events().count(e) for e in ("case_end", "memory")},
                  "non_ascii_bytes": sum(byte >= 0x80 for byte in head)}
        print(f"{cols}x{rows}: first frame {first_frame_s:.2f} s ({first_cpu_s:.2f} s CPU) · streaming "
              f"{streaming['kbps']} KB/s {streaming['cpu_pct']} % · idle {idle['kbps']} KB/s {idle['cpu_pct']} % · "
              f"paused {paused['kbps']} KB/s {paused['cpu_pct']} % · queue {queue['kbps']} KB/s · "
              f"mouse {','.join(modes) or 'off'}", flush=True)
        return result
    finally:
        pane.stop()
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            if pane.out.exists():
                (Path(args.keep) / pane.out.name).write_bytes(pane.out.read_bytes())


def first_frames(tmp: Path, suite: Path, cols: int, rows: int, launches: int) -> dict[str, Any]:
    """Exec to the first frame, ``launches`` times each, side by side: vlmtui, and the bare Textual app
    (bench/bare_tui.py) as the floor this machine sets. Wall and CPU seconds of the process; the ratio is
    the figure to judge (a busy or slow machine moves both)."""
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "vlmtui": []}
    for i in range(launches):
        for name, argv in (("bare", BARE_ARGV), ("vlmtui", None)):
            pane = Pane(tmp / f"ff-{name}-{i}", cols, rows, [], argv=argv)
            pane.tmp.mkdir()
            try:
                pane.start(suite)
                first = wait_for(lambda p=pane: p.out.exists() and FIRST_FRAME_MARK.search(p.out.read_bytes())
                                 is not None, 60, "the first frame", pane)
                cpu = pane.cpu_s()
                runs[name].append((time.time() - (time.monotonic() - first) - float(pane.t0_file.read_text()), cpu))
            finally:
                pane.stop()  # the hang-up: the app stops its engine and worker itself
                deadline = time.monotonic() + 30
                while pane.pid and pane.alive() and time.monotonic() < deadline:
                    time.sleep(POLL_S)
    result: dict[str, Any] = {"size": f"{cols}x{rows}", "launches": launches, **side_by_side(runs)}
    # Kept at the top level too, where earlier results had them.
    result["median_wall_s"] = result["vlmtui"]["median_wall_s"]
    result["median_cpu_s"] = result["vlmtui"]["median_cpu_s"]
    print(f"first frame at {cols}x{rows} ({launches} launches each, medians): vlmtui "
          f"{result['vlmtui']['median_wall_s']} s wall, {result['vlmtui']['median_cpu_s']} s CPU; bare Textual app "
          f"{result['bare']['median_wall_s']} s wall, {result['bare']['median_cpu_s']} s CPU; ratio "
          f"{result['ratio_wall']}x wall, {result['ratio_cpu']}x CPU", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["80x24", "120x40"])
    parser.add_argument("--phase-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=2.0)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--tree", default=str(ROOT), metavar="DIR",
                        help="run the vlmtui of this source tree (e.g. an older commit's, for before/after)")
    parser.add_argument("--keep", metavar="DIR", help="keep the terminal output of each size there")
    parser.add_argument("--label", default="", help="saved as tui-bytes-<label>-<date>.json")
    parser.add_argument("--first-frames", type=int, default=0, metavar="N",
                        help="only the first frame, N launches at the first size (median wall and CPU time)")
    parser.add_argument("extra", nargs="*", help="more vlmtui arguments (after --), e.g. -- --no-mouse")
    args = parser.parse_args()
    compile_tree(args.tree)
    with tempfile.TemporaryDirectory(prefix="vlmtui-bytes-") as name:
        tmp = Path(name)
        images = ", ".join(f'"{p}"' for p in sorted((ROOT / "sample_images").iterdir()))
        suite = tmp / "suite.toml"
        suite.write_text(SUITE.format(images=images, tokens=args.tokens, ui_lag=ROOT / "bench" / "ui_lag.py",
                                      rate=PACED_RATE, paced_tokens=round(PACED_RATE * PACED_S)))
        load = os.getloadavg()
        if args.first_frames:
            cols, rows = map(int, args.sizes[0].split("x"))
            frames = first_frames(tmp, suite, cols, rows, args.first_frames)
            path = save("tui-first-frame" + (f"-{args.label}" if args.label else ""),
                        {"loadavg_at_start": load, "loadavg_at_end": os.getloadavg(), **frames})
            print(f"saved {path.relative_to(ROOT)}")
            return
        runs = [run_size(tmp, suite, *map(int, size.split("x")), args) for size in args.sizes]
    name = "tui-bytes" + (f"-{args.label}" if args.label else "")
    path = save(name, {"targets": TARGETS, "phase_s": args.phase_s, "tokens": args.tokens, "tree": args.tree,
                       "extra_args": args.extra, "loadavg_at_start": load, "runs": runs,
                       "term": "tmux 3.3a default (screen)"})
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
