"""UI process footprint: the real ``vlmtui demo`` in a pseudo-terminal — first frame, RSS, and what it imported.

Each launch starts ``python -X importtime -m vlmtui demo`` on a fresh pty (100×30, TERM=xterm-256color)
and measures (a) the time from exec to the first frame: the first moment the pty output, once escape
sequences are stripped, holds the queue's header ("queue · N cases"); (b) the vlmtui process's RSS,
sampled with psutil every 50 ms until every case of the demo has ended in the session log; (c) that
torch, transformers, mlx and mlx_vlm were never imported in that process: its ``-X importtime`` log
names no such module and its /proc/<pid>/maps has no libtorch, libc10 or libmlx — while the worker's
maps, checked the same way, do show libtorch (so the check can see it).

Textual draws on stderr (``sys.__stderr__``), so stderr cannot go to a file: it stays on the pty,
everything read from the pty is kept in a transcript, and the import log is parsed out of it.
``-X importtime`` is a flag of the process, not of its children; that only the UI process wrote that
log is checked, not assumed: no descendant has ``importtime`` in its argv or PYTHONPROFILEIMPORTTIME in
its environment, and none has its stdout or stderr on the pty (the worker's are pipes, a managed
server's stderr a file). Then ``q`` quits (no case is running, so nothing asks to confirm) and the exit
code must be 0; every process started is gone before the next launch.

Prints a table, saves the result under bench/results/, and ends with
``rss_max_mb=<float> first_frame_s=<float>`` (max RSS over all launches, median first frame).

    python bench/ui_footprint.py [--runs 5] [--cols 100] [--rows 30]
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import fcntl
import json
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any, BinaryIO

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, save
from vlmtui.engine.plan import plan_cases
from vlmtui.suite.loader import load_suite

DEMO = ROOT / "suites" / "demo.toml"
SAMPLE_S = 0.050
"""How often the vlmtui process's RSS is sampled."""
MAPS_EVERY_S = 0.5
"""How often /proc/<pid>/maps of the UI process and its descendants is scanned."""
ALT_SCREEN = b"\x1b[?1049h"
"""The first thing Textual's driver writes: the switch to the alternate screen."""
FIRST_FRAME_MARK = "queue · "
"""Text of the queue's border title: in the output only once the dashboard has been drawn."""
IMPORT_LINE = re.compile(r"import time:\s*(\d+) \|\s*(\d+) \|( *)([\w.]+)")
FORBIDDEN_MODULES = ("torch", "transformers", "mlx", "mlx_vlm")
FORBIDDEN_LIBS = re.compile(r"libtorch|libc10|libmlx|/site-packages/(torch|mlx)/")
NOTABLE_MODULES = ("textual", "rich", "psutil", "numpy", "PIL", "httpx", "tokenizers", "safetensors")
"""Packages whose presence in the UI process is reported (only the forbidden ones fail the run)."""
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[^\x1b]*\x1b\\|\x1b[()][0-9A-Za-z]"
                  r"|\x1b[=>78cDEHMNOZ]")
TARGET_RSS_MB, TARGET_FIRST_FRAME_S = 120.0, 1.0
RUN_TIMEOUT_S = 120.0
QUIT_TIMEOUT_S = 30.0
MB = 1_000_000
"""RSS is reported in MB (10⁶ bytes), the unit of the target."""


def child_env(data_dir: str) -> dict[str, str]:
    """The vlmtui process's environment: offline, the shared tiny-model cache, a private data dir."""
    env = dict(os.environ)
    for name in ("PYTHONPROFILEIMPORTTIME", "COLUMNS", "LINES", "VLMTUI_HEADLESS"):
        env.pop(name, None)
    env.update(TERM="xterm-256color", HF_HUB_OFFLINE="1", VLMTUI_DATA_DIR=data_dir)
    env.setdefault("VLMTUI_CACHE_DIR", "/tmp/vlmtui-dev-cache")
    return env


def _make_controlling_tty() -> None:
    """In the child, after setsid: the pty on fd 0 becomes its controlling terminal, as in a real login."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def imported_modules(transcript: str) -> list[tuple[str, int, int]]:
    """``(module, depth, cumulative µs)`` for each ``-X importtime`` line in a terminal transcript."""
    return [(m[4], (len(m[3]) - 1) // 2, int(m[2])) for m in IMPORT_LINE.finditer(transcript)]


def forbidden_in(modules: list[tuple[str, int, int]]) -> list[str]:
    return sorted({m for m, _, _ in modules if m.split(".")[0] in FORBIDDEN_MODULES})


def lib_hits(pid: int) -> list[str]:
    """The paths of libtorch / libmlx mapped into a process ([] if none, or if it is gone)."""
    try:
        with open(f"/proc/{pid}/maps") as handle:
            return sorted({line.split()[-1] for line in handle if FORBIDDEN_LIBS.search(line)})
    except OSError:
        return []


class Descendant:
    """What a process below vlmtui was started with: whether it could write into the import log."""

    def __init__(self, proc: psutil.Process, tty: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.cmdline: list[str] = []
        self.importtime_flag = self.importtime_env = self.writes_to_tty = False
        self.stdout = self.stderr = ""
        self.torch_libs: list[str] = []
        with contextlib.suppress(psutil.Error, OSError):
            self.cmdline = proc.cmdline()
            self.importtime_flag = any("importtime" in arg for arg in self.cmdline)
            self.importtime_env = "PYTHONPROFILEIMPORTTIME" in proc.environ()
            self.stdout = os.readlink(f"/proc/{proc.pid}/fd/1")
            self.stderr = os.readlink(f"/proc/{proc.pid}/fd/2")
            self.writes_to_tty = tty in (self.stdout, self.stderr)

    def summary(self) -> dict[str, Any]:
        return {"pid": self.pid, "argv": " ".join(self.cmdline[:6]), "importtime_flag": self.importtime_flag,
                "importtime_env": self.importtime_env, "stdout": self.stdout, "stderr": self.stderr,
                "writes_to_tty": self.writes_to_tty, "torch_or_mlx_libs_mapped": bool(self.torch_libs)}


class Launch:
    """One ``vlmtui demo`` on its own pty, driven and measured until it has quit."""

    def __init__(self, cols: int, rows: int, tmp: Path) -> None:
        self.cols, self.rows, self.tmp = cols, rows, tmp
        self.transcript = tmp / "pty.log"
        self.tty = ""
        self.session_log = tmp / "session.jsonl"
        self.total_cases = len(plan_cases(load_suite(DEMO)))
        self.proc: subprocess.Popen[bytes] | None = None
        self.master = -1
        self._transcript: BinaryIO | None = None
        self.descendants: dict[int, Descendant] = {}
        self.rss: list[int] = []
        self.worker_rss_max = 0
        self.ui_libs: set[str] = set()
        self.out_bytes = 0
        self._screen_text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._log_offset = 0
        self.cases_ended = 0

    def run(self) -> dict[str, Any]:
        master, slave = os.openpty()
        self.master = master
        self.tty = os.ttyname(slave)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))
        argv = [sys.executable, "-X", "importtime", "-m", "vlmtui", "demo", "--log", str(self.session_log)]
        self._transcript = open(self.transcript, "wb")  # noqa: SIM115 (closed in cleanup)
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                                     env=child_env(str(self.tmp / "data")), start_new_session=True,
                                     preexec_fn=_make_controlling_tty)  # safe: this process starts no thread
        os.close(slave)
        ui = psutil.Process(self.proc.pid)
        alt_screen = first_frame = rss_at_first_frame = None
        next_sample = next_maps = time.perf_counter()
        deadline = started + RUN_TIMEOUT_S
        while self.cases_ended < self.total_cases:
            now = time.perf_counter()
            if now > deadline:
                raise RuntimeError(f"the demo did not finish in {RUN_TIMEOUT_S:g} s "
                                   f"({self.cases_ended}/{self.total_cases} cases ended)")
            if self.proc.poll() is not None:
                raise RuntimeError(f"vlmtui exited early with {self.proc.returncode}; the terminal's tail:\n"
                                   f"{ANSI.sub('', self._screen_text[-2000:])}")
            ready, _, _ = select.select([master], [], [], max(0.0, next_sample - now))
            if ready:
                chunk = self._read()
                if alt_screen is None and ALT_SCREEN in chunk:  # Textual's driver has started
                    alt_screen = time.perf_counter() - started
                if first_frame is None and self._frame_seen(chunk):
                    first_frame = time.perf_counter() - started
                    rss_at_first_frame = ui.memory_info().rss
            now = time.perf_counter()
            if now >= next_sample:
                next_sample += SAMPLE_S
                self._sample(ui, maps=now >= next_maps)
                if now >= next_maps:
                    next_maps = now + MAPS_EVERY_S
                self._count_ended()
        if first_frame is None:
            raise RuntimeError("the demo ran to the end but the dashboard never showed its queue header")
        done_s = time.perf_counter() - started
        self._sample(ui, maps=True)
        uss = ui.memory_full_info().uss
        self.proc_exit()
        self._transcript.close()
        transcript = self.transcript.read_bytes().decode(errors="replace")
        modules = imported_modules(transcript)
        names = {m for m, _, _ in modules}
        top = sorted(((m, us) for m, depth, us in modules if depth == 0), key=lambda x: -x[1])[:6]
        return {
            "alt_screen_s": round(alt_screen or 0.0, 4),
            "first_frame_s": round(first_frame, 4),
            "demo_done_s": round(done_s, 2),
            "rss_max_mb": round(max(self.rss) / MB, 1),
            "rss_median_mb": round(statistics.median(self.rss) / MB, 1),
            "rss_first_frame_mb": round((rss_at_first_frame or 0) / MB, 1),
            "uss_end_mb": round(uss / MB, 1),
            "rss_samples": len(self.rss),
            "children_rss_max_mb": round(self.worker_rss_max / MB, 1),  # worker + managed server, summed
            "exit_code": self.proc.returncode if self.proc else None,
            "pty_bytes": self.out_bytes,
            "imports": {
                "modules": len(modules),
                "unparsed_lines": transcript.count("import time:") - 1 - len(modules),  # less the header
                "forbidden": forbidden_in(modules),
                "ui_modules_present": all(m in names for m in ("vlmtui.ui.tui.app", "textual.app")),
                "notable": {n: any(m.split(".")[0] == n for m in names) for n in NOTABLE_MODULES},
                "slowest_top_level_ms": {m: round(us / 1000, 1) for m, us in top},
            },
            "ui_libs_mapped": sorted(self.ui_libs),
            "descendants": [d.summary() for d in self.descendants.values()],
        }

    def _read(self) -> bytes:
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is closed
            return b""
        self.out_bytes += len(chunk)
        if self._transcript is not None:
            self._transcript.write(chunk)
        return chunk

    def _frame_seen(self, chunk: bytes) -> bool:
        # Escape sequences can straddle reads, so the text is kept until the header has been seen.
        self._screen_text += self._decoder.decode(chunk)
        return FIRST_FRAME_MARK in ANSI.sub("", self._screen_text)

    def _sample(self, ui: psutil.Process, *, maps: bool) -> None:
        try:
            self.rss.append(ui.memory_info().rss)
            children = ui.children(recursive=True)
        except psutil.Error:
            return
        worker_rss = 0
        for child in children:
            if child.pid not in self.descendants:
                self.descendants[child.pid] = Descendant(child, self.tty)
            with contextlib.suppress(psutil.Error):
                worker_rss += child.memory_info().rss
            if maps:
                known = self.descendants[child.pid]
                known.torch_libs = known.torch_libs or lib_hits(child.pid)
        self.worker_rss_max = max(self.worker_rss_max, worker_rss)
        if maps:
            self.ui_libs.update(lib_hits(ui.pid))

    def _count_ended(self) -> None:
        try:
            with open(self.session_log, "rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self._log_offset += len(complete)
        for line in complete.splitlines():
            if json.loads(line).get("event") == "case_end":
                self.cases_ended += 1

    def proc_exit(self) -> None:
        """``q`` (nothing runs, so no confirmation), draining the pty until the process has exited."""
        assert self.proc is not None
        os.write(self.master, b"q")
        deadline = time.monotonic() + QUIT_TIMEOUT_S
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"vlmtui did not exit within {QUIT_TIMEOUT_S:g} s of q")
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready and not self._read():
                time.sleep(0.05)

    def cleanup(self) -> None:
        """Whatever happened: the vlmtui process and everything it started are gone, the pty is closed."""
        procs = [d.proc for d in self.descendants.values()]
        if self.proc is not None:
            with contextlib.suppress(psutil.Error):
                procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True),
                         *procs]
            if self.proc.poll() is None:
                with contextlib.suppress(OSError, psutil.Error):
                    os.write(self.master, b"\x11")  # ctrl+q: quit now, the worker is still stopped cleanly
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.send_signal(signal.SIGTERM)
        alive = [p for p in procs if _running(p)]
        _, alive = psutil.wait_procs(alive, timeout=10)
        for proc in alive:
            with contextlib.suppress(OSError, psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.wait(timeout=5)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        if self._transcript is not None:
            self._transcript.close()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="launches of the full demo")
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--rows", type=int, default=30)
    args = parser.parse_args()
    load_before = os.getloadavg()
    launches = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="vlmtui-footprint-") as tmp:
            launch = Launch(args.cols, args.rows, Path(tmp))
            try:
                result = launch.run()
            finally:
                launch.cleanup()
        launches.append(result)
        print(f"  launch {i + 1}: first frame {result['first_frame_s']:.3f} s, "
              f"demo done {result['demo_done_s']:.1f} s, rss max {result['rss_max_mb']:.1f} MB, "
              f"exit {result['exit_code']}", flush=True)
    load_after = os.getloadavg()

    problems = []
    for i, r in enumerate(launches, 1):
        if r["imports"]["forbidden"]:
            problems.append(f"launch {i}: the UI process imported {r['imports']['forbidden']}")
        if not r["imports"]["ui_modules_present"]:
            problems.append(f"launch {i}: the import log is not the UI process's (no vlmtui.ui.tui.app / textual.app)")
        if r["imports"]["unparsed_lines"]:
            print(f"  note: launch {i}: {r['imports']['unparsed_lines']} import-time lines were cut by a frame")
        if r["ui_libs_mapped"]:
            problems.append(f"launch {i}: the UI process maps {r['ui_libs_mapped']}")
        leaks = [d for d in r["descendants"] if d["importtime_flag"] or d["importtime_env"] or d["writes_to_tty"]]
        if leaks:
            problems.append(f"launch {i}: a descendant could write to the import log: {leaks}")
        if r["exit_code"] != 0:
            problems.append(f"launch {i}: vlmtui exited with {r['exit_code']}")
    control = any(d["torch_or_mlx_libs_mapped"] for r in launches for d in r["descendants"])

    first_frames = [r["first_frame_s"] for r in launches]
    first_frame = statistics.median(first_frames)
    rss_max = max(r["rss_max_mb"] for r in launches)
    rss_median = statistics.median(r["rss_median_mb"] for r in launches)
    print(f"\nvlmtui demo in a {args.cols}×{args.rows} pty, {args.runs} launches "
          f"(load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} cores)")
    print(f"  {'launch':>6} {'alt screen s':>12} {'first frame s':>13} {'done s':>7} {'RSS max MB':>11} "
          f"{'RSS med MB':>11} {'USS end MB':>11} {'children MB':>11} {'modules':>7}")
    for i, r in enumerate(launches, 1):
        print(f"  {i:>6} {r['alt_screen_s']:>12.3f} {r['first_frame_s']:>13.3f} {r['demo_done_s']:>7.1f} "
              f"{r['rss_max_mb']:>11.1f} {r['rss_median_mb']:>11.1f} {r['uss_end_mb']:>11.1f} "
              f"{r['children_rss_max_mb']:>11.1f} {r['imports']['modules']:>7}")
    notable = launches[-1]["imports"]["notable"]
    print(f"  first frame median {first_frame:.3f} s (target ≤ {TARGET_FIRST_FRAME_S:g} s); "
          f"RSS max {rss_max:.1f} MB, median {rss_median:.1f} MB (target ≤ {TARGET_RSS_MB:g} MB)")
    print(f"  UI process imported: {', '.join(n for n, present in notable.items() if present)}; "
          f"not: {', '.join(n for n, present in notable.items() if not present)}")
    print(f"  slowest top-level imports (ms): {launches[-1]['imports']['slowest_top_level_ms']}")
    print("  torch/transformers/mlx/mlx_vlm in the UI's import log: none; libtorch/libmlx in its maps: none"
          if not problems else "  PROBLEMS:\n    " + "\n    ".join(problems))
    print(f"  control: a worker's maps showed libtorch/libmlx: {control}")
    path = save("ui-footprint", {
        "terminal": {"cols": args.cols, "rows": args.rows, "TERM": "xterm-256color"},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "launches": launches,
        "first_frame_s_median": first_frame,
        "rss_max_mb": rss_max,
        "rss_median_mb": rss_median,
        "forbidden_imports_ok": not problems,
        "control_worker_maps_torch": control,
        "problems": problems,
        "targets": {"first_frame_s": TARGET_FIRST_FRAME_S, "rss_mb": TARGET_RSS_MB},
    })
    print(f"\nsaved {path.relative_to(ROOT)}")
    print(f"rss_max_mb={rss_max:.1f} first_frame_s={first_frame:.3f}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
