"""Shared by the benchmarks: where results go, and the machine and versions they were measured on."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

PACKAGES = ("vlmtui", "torch", "transformers", "mlx", "mlx-vlm", "textual", "psutil")


def machine() -> dict[str, Any]:
    """The machine, versions and date of a measurement."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>-<date>.json`` with the machine attached; returns the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    path = RESULTS / f"{name}-{info['date'][:10]}.json"
    path.write_text(json.dumps({"machine": info, **payload}, indent=2) + "\n")
    return path


def finish(name: str, result: dict[str, Any], started: float) -> Path:
    """Save ``result`` as ``name``, say where and how long the run took, and warn of child processes left
    behind (a benchmark that leaks workers would measure the next one wrongly)."""
    import time

    import psutil

    path = save(name, result)
    print(f"\nsaved {path.relative_to(ROOT)} ({time.perf_counter() - started:.0f} s)")
    leftovers = [c.pid for c in psutil.Process().children(recursive=True)]
    if leftovers:
        print(f"warning: child processes left: {leftovers}", file=sys.stderr)
    return path
