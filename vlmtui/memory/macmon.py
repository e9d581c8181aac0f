"""Apple silicon GPU load, power and temperatures without sudo: ``macmon pipe`` read as a long-running child.

macmon (github.com/vladkens/macmon) reads the same IOReport and SMC counters as ``powermetrics`` without
root, and ``macmon pipe -i MS`` prints one JSON object per interval. vlmtui never asks for sudo and never
runs powermetrics: without macmon on the PATH the figures are "n/a (install macmon)".

One child per sampler, read line by line in a daemon thread that keeps only the latest reading; the
sampler's caller just copies it (no pipe read, no JSON parse on its time). If vlmtui dies, the child's
next write hits a closed pipe and macmon exits with it.

Layouts understood (field names from macmon's README and source):

- v0.4–v0.8 (flat): ``gpu_power``, ``cpu_power``, ``ane_power`` (W), ``temp.cpu_temp_avg`` and
  ``temp.gpu_temp_avg`` (°C), ``gpu_usage`` = ``[MHz, frequency-scaled ratio]``; v0.8 adds
  ``gpu_active_ratio`` (share of the interval the GPU ran, the figure NVML's utilisation also means),
  which is preferred when present.
- the nested layout in macmon's newer source (``power.{gpu,cpu,ane}``, ``temp.{gpu_avg,cpu_avg}``,
  ``usage.gpu.{NAME: [units, MHz, ratio]}``).

A temperature of 0 is macmon's "no sensor read" and is left out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from vlmtui.memory.telemetry_sample import NA_MACMON, NotAvailable, TelemetrySample

MACMON_FIGURES = ("gpu_util_pct", "power_w", "cpu_power_w", "ane_power_w", "temperatures_c")
MIN_INTERVAL_MS = 100
"""macmon refuses shorter intervals (it clamps ``-i`` to 100 ms)."""
STOP_GRACE_S = 1.0


def _number(doc: Any, *path: str) -> float | None:
    """``doc[path[0]][path[1]]…`` as a float, ``None`` where any step is missing or not a number."""
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return float(doc) if isinstance(doc, (int, float)) and not isinstance(doc, bool) else None


def _gpu_ratio(doc: dict[str, Any]) -> tuple[float | None, str]:
    """The GPU's busy share (0–1) and which field gave it: active residency first, else the scaled ratio."""
    active = _number(doc, "gpu_active_ratio")
    if active is not None:
        return active, "macmon:gpu_active_ratio"
    usage = doc.get("gpu_usage")
    if isinstance(usage, list) and len(usage) == 2 and isinstance(usage[1], (int, float)):
        return float(usage[1]), "macmon:gpu_usage"
    scaled = _number(doc, "gpu_scaled_ratio")
    if scaled is not None:
        return scaled, "macmon:gpu_scaled_ratio"
    gpus = doc.get("usage", {}).get("gpu") if isinstance(doc.get("usage"), dict) else None
    if isinstance(gpus, dict):
        ratios = [float(v[2]) for v in gpus.values() if isinstance(v, list) and len(v) == 3]
        if ratios:
            return max(ratios), "macmon:usage.gpu"
    return None, ""


def parse_macmon_line(line: str, *, t: float | None = None) -> TelemetrySample | None:
    """One ``macmon pipe`` line as a partial sample; ``None`` for a line that is not a macmon object."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    nested = isinstance(doc.get("power"), dict)
    watts = {
        "power_w": _number(doc, "power", "gpu") if nested else _number(doc, "gpu_power"),
        "cpu_power_w": _number(doc, "power", "cpu") if nested else _number(doc, "cpu_power"),
        "ane_power_w": _number(doc, "power", "ane") if nested else _number(doc, "ane_power"),
    }
    temps = [("cpu", _number(doc, "temp", "cpu_temp_avg") or _number(doc, "temp", "cpu_avg")),
             ("gpu", _number(doc, "temp", "gpu_temp_avg") or _number(doc, "temp", "gpu_avg"))]
    temperatures = tuple((name, c) for name, c in temps if c)  # 0: no sensor read
    ratio, ratio_source = _gpu_ratio(doc)
    if ratio is None and all(w is None for w in watts.values()):
        return None
    sources = [("gpu_util_pct", ratio_source)] if ratio is not None else []
    sources += [(figure, "macmon") for figure, w in watts.items() if w is not None]
    sources += [("temperatures_c", "macmon")] if temperatures else []
    present = {figure for figure, _ in sources}
    return TelemetrySample(
        t=time.time() if t is None else t,
        gpu_util_pct=ratio * 100.0 if ratio is not None else None,
        temperatures_c=temperatures,
        sources=tuple(sources),
        unavailable=tuple((f, "n/a (macmon gave no value)") for f in MACMON_FIGURES if f not in present),
        power_w=watts["power_w"],
        cpu_power_w=watts["cpu_power_w"],
        ane_power_w=watts["ane_power_w"],
    )


def find_macmon(which: Any = shutil.which) -> str | NotAvailable:
    """macmon's path on the PATH, or "n/a (install macmon)"."""
    path = which("macmon")
    return path if path else NotAvailable(NA_MACMON)


class MacmonReader:
    """``macmon pipe`` as a child process; a daemon thread keeps its latest reading."""

    def __init__(self, argv: Sequence[str], *, stale_after_s: float = 3.0) -> None:
        self.argv = list(argv)
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._latest: TelemetrySample | None = None
        self._ended: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_path(cls, path: str, interval_ms: int) -> MacmonReader:
        """``macmon pipe -i MS``; a reading older than three intervals (at least 3 s) counts as stale."""
        interval = max(interval_ms, MIN_INTERVAL_MS)
        return cls([path, "pipe", "-i", str(interval)], stale_after_s=max(3.0, 3 * interval / 1000))

    def start(self) -> MacmonReader:
        """Start the child and its reader thread; a child that cannot start is an ended reader, not an error."""
        try:
            self._process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, text=True, bufsize=1)
        except OSError as exc:
            self._ended = f"n/a (macmon could not start: {exc.strerror or type(exc).__name__})"
            return self
        assert self._process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True,
                                        name="macmon")
        self._thread.start()
        return self

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            sample = parse_macmon_line(line, t=time.time())
            if sample is not None:
                with self._lock:
                    self._latest = sample
        process = self._process
        code = process.wait() if process is not None else None
        with self._lock:
            if self._ended is None:
                self._ended = f"n/a (macmon exited with {code})"

    def latest(self, now: float | None = None) -> TelemetrySample:
        """The latest reading, or a part that says why there is none (not yet, stale, macmon ended)."""
        now = time.time() if now is None else now
        with self._lock:
            latest, ended = self._latest, self._ended
        if latest is not None and now - latest.t <= self.stale_after_s:
            return latest
        if ended is not None:
            reason = ended
        elif latest is None:
            reason = "n/a (waiting for macmon)"
        else:
            reason = f"n/a (macmon silent for {now - latest.t:.0f} s)"
        return TelemetrySample(t=now, unavailable=tuple((f, reason) for f in MACMON_FIGURES))

    def stop(self) -> None:
        """End the child: SIGTERM, then SIGKILL after a second; wait for the reader thread."""
        process = self._process
        with self._lock:
            self._ended = self._ended or "n/a (macmon stopped)"
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S)
        if process is not None and process.stdout is not None:
            process.stdout.close()
