"""The dashboard's event-loop lag while tokens stream, at the default frame rate and at VLMTUI_FPS=30 and 8.

The scheduler shares the UI's asyncio loop, so a slow redraw delays tokens and a slow engine freezes
keys. Each configuration runs in a fresh process: a ``VlmApp`` over the real scheduler, worker
subprocess and session log, with one text case on the tiny Idefics3 generating up to 3000 tokens, with
transformers (``TextIteratorStreamer`` sends whole words: a few events a second from the gibberish of a
random model) and with mlx-vlm (one event per token: hundreds a second, the harder load). Two ways of
drawing: ``pty`` runs the app with Textual's real Linux driver on a pseudo-terminal (100×30,
TERM=xterm-256color) that this script drains, so composing *and* writing frames count; ``headless``
runs it under ``App.run_test()`` (frames are composed, not written).

Once text reaches the output pane, a probe sleeps 10 ms on the loop, over and over, until the case
ends; the lag is how late each wake-up is. Then the same probe runs for a while on the idle app (the
worker still up, the memory watch still sampling): the side-by-side baseline. Also reported: the CPU
share of the UI process and of the processes under it (worker, server) while streaming — on a small
machine a busy worker delays the UI's wake-ups by taking the cores — throttled UI updates a second, and
bytes written to the terminal a second, and how long the loop's thread sat runnable but waiting for a
CPU (``wait ms/s``, from /proc/thread-self/schedstat): lag that is the machine's, not the UI's.

Prints a table, saves the result under bench/results/, and ends with ``lag_p99_ms=<float>`` (the worst
p99 over the configurations).

    python bench/ui_lag.py [--fps default 30 8] [--backends transformers mlx-vlm] [--modes pty headless]
                           [--max-tokens 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
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
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, save

SAMPLE_S = 0.010
"""How often the loop's lag is sampled."""
IDLE_S = 2.0
"""How long the idle baseline is sampled after the case has ended."""
COLS, ROWS = 100, 30
TARGET_P99_MS = 50.0
CHILD_TIMEOUT_S = 150.0
PACED_RATE = 300.0
"""Tokens a second the paced server streams: a small real model's pace, one word a chunk."""
SUITE = """name = "ui-lag"
images = ["{image}"]
prompts = ["Describe this image."]
text_prompts = ["Tell me a long story about a lighthouse keeper."]
max_tokens = {max_tokens}
temperature = 0.0
"""
MODELS = {
    "transformers": '[[models]]\nid = "smolvlm-tiny-hf"\nbackend = "transformers"\npath = "tiny:idefics3"\n',
    "mlx-vlm": '[[models]]\nid = "smolvlm-tiny-mlx"\nbackend = "mlx-vlm"\npath = "tiny:idefics3"\n',
    "paced": '[[models]]\nid = "paced-server"\nbackend = "openai"\n'
             'command = ["{{python}}", "{script}", "--serve", "{{port}}", "--rate", "{rate}"]\n'
             "max_tokens = {paced_tokens}\n",
}
"""The source of the stream: a tiny model in the worker, or (``paced``) an OpenAI-compatible server,
started by vlmtui through the openai backend, that streams one word per chunk at ``--paced-rate``."""
STORY = ("the keeper climbed the stair at dusk and lit the lamp while gulls wheeled over a grey and restless "
         "sea that broke white on the rocks below")
PACED_S = 5.0
"""How long the paced server streams (its model's max_tokens is rate × this)."""


# --------------------------------------------------------------------------------------- paced server


def serve(port: int, rate: float) -> None:
    """A minimal OpenAI-compatible chat server: ``max_tokens`` one-word chunks at ``rate`` a second."""
    import http.server

    words = STORY.split()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._json({"object": "list", "data": [{"id": "paced", "object": "model"}]})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            count = int(request.get("max_tokens") or 256)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()

            def event(payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

            base = {"id": "paced", "object": "chat.completion.chunk", "created": int(time.time()), "model": "paced"}
            started = time.perf_counter()
            try:
                for i in range(count):
                    delay = started + i / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    word = words[i % len(words)] + ("\n" if i % 13 == 12 else " ")
                    event({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
                event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
                if (request.get("stream_options") or {}).get("include_usage"):
                    event({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": count,
                                                            "total_tokens": 12 + count}})
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading: an abort

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ---------------------------------------------------------------------------------------------- child


def _runqueue_wait_s() -> float:
    """Time this (the loop's) thread has spent runnable but waiting for a CPU, from the kernel's schedstat."""
    try:
        with open("/proc/thread-self/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


async def _probe(until: Any, duration: float | None = None) -> list[float]:
    """Sleep SAMPLE_S over and over while ``until()`` holds (or for ``duration``); each wake-up's lateness."""
    lags: list[float] = []
    end = time.perf_counter() + duration if duration is not None else None
    while until() and (end is None or time.perf_counter() < end):
        t = time.perf_counter()
        await asyncio.sleep(SAMPLE_S)
        lags.append(time.perf_counter() - t - SAMPLE_S)
    return lags


async def _measure(app: Any, chunks: list[int], finished: dict[str, Any]) -> dict[str, Any]:
    """Wait for streamed text in the output pane, probe until the case ends, then probe the idle app."""
    scheduler = app.engine
    deadline = time.monotonic() + 90
    while True:
        content = app.dashboard.output
        if content is not None and content.streaming and content.text:
            break
        if finished or time.monotonic() > deadline:
            raise RuntimeError(f"no text streamed to the output pane (finished: {finished})")
        await asyncio.sleep(0.02)
    posted, streamed, chars = app.dashboard.bridge.posted, len(chunks), sum(chunks)
    cpu, wall, started, waited = time.process_time(), time.time(), time.perf_counter(), _runqueue_wait_s()
    lags = await _probe(lambda: scheduler.running_case is not None)
    duration = time.perf_counter() - started
    cpu_s, wall_end, waited = time.process_time() - cpu, time.time(), _runqueue_wait_s() - waited
    updates, streamed, chars = app.dashboard.bridge.posted - posted, len(chunks) - streamed, sum(chunks) - chars
    idle_cpu = time.process_time()
    idle = await _probe(lambda: True, IDLE_S)
    idle_cpu = time.process_time() - idle_cpu
    return {
        "fps": app.dashboard.bridge.fps, "lags_s": lags, "idle_lags_s": idle, "duration_s": duration,
        "window": [wall, wall_end], "chunks": streamed, "chars": chars, "updates": updates, "cpu_s": cpu_s,
        "idle_cpu_s": idle_cpu, "case": finished, "runqueue_wait_s": waited,
    }


def child(mode: str, backend: str, max_tokens: int, rate: float, out: Path) -> None:
    """One configuration, in this (fresh) process: the app over a real scheduler and worker."""
    from vlmtui.engine.events import CaseFinished, Event, TokenReceived
    from vlmtui.engine.plan import plan_cases
    from vlmtui.engine.scheduler import Scheduler
    from vlmtui.engine.session_log import SessionLog
    from vlmtui.suite.loader import load_suite
    from vlmtui.ui.tui.app import VlmApp

    with tempfile.TemporaryDirectory(prefix="vlmtui-lag-") as tmp:
        image = sorted((ROOT / "sample_images").iterdir())[0]
        suite_path = Path(tmp) / "suite.toml"
        model = MODELS[backend].format(script=Path(__file__).resolve(), rate=rate,
                                        paced_tokens=round(rate * PACED_S))
        suite_path.write_text(SUITE.format(image=image, max_tokens=max_tokens) + "\n" + model)
        suite = load_suite(suite_path)
        cases = [c for c in plan_cases(suite) if c.kind == "text"]
        scheduler = Scheduler(cases, suite_name=suite.name, suite_path=str(suite_path), guard=suite.guard)
        log = SessionLog(Path(tmp) / "session.jsonl")
        scheduler.subscribe(log)
        chunks: list[int] = []
        finished: dict[str, Any] = {}

        def record(event: Event) -> None:
            if isinstance(event, TokenReceived):
                chunks.append(len(event.text))
            elif isinstance(event, CaseFinished):
                finished.update(status=event.result.status, error=event.result.error,
                                gen_tokens=event.result.metrics.get("gen_tokens"),
                                gen_tps=event.result.metrics.get("gen_tps"))

        scheduler.subscribe(record)
        app = VlmApp(scheduler, log_path=log.path)  # fps from VLMTUI_FPS, as for a user

        async def headless() -> dict[str, Any]:
            async with app.run_test(size=(COLS, ROWS)):
                try:
                    return await _measure(app, chunks, finished)
                finally:
                    await app.stop_engine("the benchmark is over")

        async def in_pty() -> dict[str, Any]:
            running = asyncio.create_task(app.run_async())
            try:
                return await _measure(app, chunks, finished)
            finally:
                await app.stop_engine("the benchmark is over")
                app.exit(0)
                await running

        try:
            result = asyncio.run(headless() if mode == "headless" else in_pty())
        finally:
            log.close()
    out.write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------- parent


def _make_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU time (user + system) used so far by the processes still alive (the worker, a server)."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def run_config(mode: str, backend: str, fps: str, max_tokens: int, rate: float) -> dict[str, Any]:
    """Run one configuration in a child process on its own pty; drain the pty and count its bytes."""
    with tempfile.TemporaryDirectory(prefix="vlmtui-lag-run-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ)
        for name in ("VLMTUI_FPS", "COLUMNS", "LINES", "PYTHONPROFILEIMPORTTIME"):
            env.pop(name, None)
        if fps != "default":
            env["VLMTUI_FPS"] = fps
        env.update(TERM="xterm-256color", HF_HUB_OFFLINE="1", VLMTUI_DATA_DIR=str(Path(tmp) / "data"))
        env.setdefault("VLMTUI_CACHE_DIR", "/tmp/vlmtui-dev-cache")
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--backends", backend,
                "--max-tokens", str(max_tokens), "--paced-rate", str(rate), "--out", str(out)]
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                                start_new_session=True,
                                preexec_fn=_make_controlling_tty)  # safe: this process starts no thread
        os.close(slave)
        reads: list[tuple[float, int]] = []
        cpu: list[tuple[float, float]] = []  # (wall time, CPU seconds of the child's descendants so far)
        tail = b""
        seen: list[psutil.Process] = []
        try:
            deadline = time.monotonic() + CHILD_TIMEOUT_S
            while True:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode} {backend} at fps {fps} did not finish in {CHILD_TIMEOUT_S:g} s")
                with contextlib.suppress(psutil.Error):
                    known = {p.pid for p in seen}
                    seen += [c for c in psutil.Process(proc.pid).children(recursive=True) if c.pid not in known]
                cpu.append((time.time(), _cpu_seconds(seen)))
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every writer is gone
                        chunk = b""
                    if chunk:
                        reads.append((time.time(), len(chunk)))
                        tail = (tail + chunk)[-4000:]
                    elif proc.poll() is not None:
                        break
                elif proc.poll() is not None:
                    break
            if proc.wait() != 0 or not out.exists():
                raise RuntimeError(f"{mode} {backend} at fps {fps} failed ({proc.returncode}); the terminal's tail:\n"
                                   f"{tail.decode(errors='replace')}")
            result: dict[str, Any] = json.loads(out.read_text())
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
            alive = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(alive, timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
    start, end = result.pop("window")
    result["tty_bytes"] = sum(n for t, n in reads if start <= t <= end)
    inside = [(t, c) for t, c in cpu if start <= t <= end]
    result["others_cpu_s"] = inside[-1][1] - inside[0][1] if len(inside) > 1 else None
    result["others_cpu_span_s"] = inside[-1][0] - inside[0][0] if len(inside) > 1 else None
    return result


def summarize(mode: str, backend: str, fps_label: str, raw: dict[str, Any]) -> dict[str, Any]:
    def stats(lags: list[float]) -> dict[str, float]:
        cuts = statistics.quantiles(lags, n=100)
        return {"p50_ms": round(statistics.median(lags) * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2),
                "max_ms": round(max(lags) * 1000, 2), "samples": len(lags)}

    duration = raw["duration_s"]
    return {
        "mode": mode, "backend": backend, "fps_setting": fps_label, "fps": raw["fps"],
        "streaming": stats(raw["lags_s"]), "idle": stats(raw["idle_lags_s"]), "duration_s": round(duration, 2),
        "case": raw["case"], "chunks_per_s": round(raw["chunks"] / duration, 1),
        "chars_per_chunk": round(raw["chars"] / raw["chunks"], 1) if raw["chunks"] else None,
        "ui_updates_per_s": round(raw["updates"] / duration, 1),
        "ui_cpu_pct": round(100 * raw["cpu_s"] / duration, 1),
        "loop_runqueue_wait_ms_per_s": round(1000 * raw["runqueue_wait_s"] / duration, 1),
        "idle_ui_cpu_pct": round(100 * raw["idle_cpu_s"] / IDLE_S, 1),
        "worker_cpu_pct": round(100 * raw["others_cpu_s"] / raw["others_cpu_span_s"], 1)
        if raw["others_cpu_span_s"] else None,
        "tty_kb_per_s": round(raw["tty_bytes"] / duration / 1000, 1) if mode == "pty" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fps", nargs="+", default=["default", "30", "8"],
                        help='VLMTUI_FPS values ("default": unset)')
    parser.add_argument("--modes", nargs="+", choices=("pty", "headless"), default=["pty"])
    parser.add_argument("--backends", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--max-tokens", type=int, default=3000)
    parser.add_argument("--paced-rate", type=float, default=PACED_RATE, help="tokens a second of the paced server")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=PACED_RATE, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("pty", "headless"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backends[0], args.max_tokens, args.paced_rate, args.out)
        return
    if args.serve:
        serve(args.serve, args.rate)
        return

    load_before = os.getloadavg()
    runs = []
    for backend in args.backends:
        for mode in args.modes:
            for fps in args.fps:
                run = summarize(mode, backend, fps, run_config(mode, backend, fps, args.max_tokens, args.paced_rate))
                runs.append(run)
                s = run["streaming"]
                print(f"  {backend} {mode} fps {fps} ({run['fps']:g}): p50 {s['p50_ms']:.2f} ms, "
                      f"p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.2f} ms over {run['duration_s']:.1f} s", flush=True)
    load_after = os.getloadavg()

    print(f"\nloop lag while text streams (tiny Idefics3 on CPU: up to {args.max_tokens} tokens; paced: "
          f"{args.paced_rate:g} tok/s for {PACED_S:g} s), 10 ms probe "
          f"(load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} cores)")
    print(f"  {'backend':<12} {'mode':<8} {'fps':>12} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} │ "
          f"{'idle p50':>8} {'idle p99':>8} {'p99 ×idle':>9} │ {'tok/s':>6} {'chunks/s':>8} {'ch/chunk':>8} "
          f"{'upd/s':>6} {'UI CPU %':>8} {'wrk CPU %':>9} {'wait ms/s':>9} {'tty kB/s':>8}")
    for r in runs:
        s, i = r["streaming"], r["idle"]
        ratio = s["p99_ms"] / i["p99_ms"] if i["p99_ms"] > 0 else float("nan")
        tty = f"{r['tty_kb_per_s']:.1f}" if r["tty_kb_per_s"] is not None else "—"
        fps = f"{r['fps_setting']} ({r['fps']:g})"
        print(f"  {r['backend']:<12} {r['mode']:<8} {fps:>12} {s['p50_ms']:>7.2f} "
              f"{s['p99_ms']:>7.2f} {s['max_ms']:>7.2f} │ {i['p50_ms']:>8.2f} {i['p99_ms']:>8.2f} {ratio:>9.2f} │ "
              f"{r['case'].get('gen_tps') or 0:>6.0f} {r['chunks_per_s']:>8.1f} "
              f"{r['chars_per_chunk'] or 0:>8.1f} {r['ui_updates_per_s']:>6.1f} "
              f"{r['ui_cpu_pct']:>8.1f} {r['worker_cpu_pct'] or 0:>9.0f} "
              f"{r['loop_runqueue_wait_ms_per_s']:>9.1f} {tty:>8}")
    worst = max(r["streaming"]["p99_ms"] for r in runs)
    print(f"  worst p99 {worst:.2f} ms (target ≤ {TARGET_P99_MS:g} ms)")
    path = save("ui-lag", {
        "terminal": {"cols": COLS, "rows": ROWS, "TERM": "xterm-256color"},
        "max_tokens": args.max_tokens, "paced_rate": args.paced_rate, "paced_s": PACED_S,
        "sample_s": SAMPLE_S, "idle_s": IDLE_S,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "runs": runs, "lag_p99_ms": worst, "target_p99_ms": TARGET_P99_MS,
    })
    print(f"\nsaved {path.relative_to(ROOT)}")
    print(f"lag_p99_ms={worst:.2f}")


if __name__ == "__main__":
    main()
