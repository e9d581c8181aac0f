"""``python -m vlmtui.worker.probe``: imports the model frameworks in a throwaway process and prints what it found.

`vlmtui doctor` runs this as a subprocess, so a broken framework install (or a Metal abort) cannot take
the command down, and vlmtui itself never imports torch or mlx.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import sys
from collections.abc import Mapping
from typing import Any

from vlmtui.plugins import discover
from vlmtui.worker.frameworks import device_info, probe_mlx, probe_nvml, probe_torch


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    """Top-level module → the distributions that install it (``mlx_vlm`` → ``mlx-vlm``)."""
    return importlib.metadata.packages_distributions()


def _import(name: str) -> dict[str, Any]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # not installed, or broken in a way worth showing
        first = (str(exc).strip().splitlines() or [""])[0]
        return {"ok": False, "error": f"{type(exc).__name__}: {first}"[:200]}
    top = name.partition(".")[0]
    for dist in [*_distributions().get(top, []), top]:
        try:
            return {"ok": True, "version": importlib.metadata.version(dist)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"ok": True, "version": "?"}


def probe() -> dict[str, Any]:
    """Backends (the packages each declares, with versions), devices and which memory sources answer."""
    found = discover()
    modules = {name: _import(name) for d in found.backends.values() for name in d.packages}
    backends: dict[str, Any] = {
        f"{d.name} backend": {
            "ok": all(modules[n]["ok"] for n in d.packages),
            "modules": {n: modules[n] for n in d.packages},
            "origin": found.origins[d.name],
        }
        for d in found.backends.values()
    }
    for name, problem in found.problems.items():
        backends[f"{name} backend"] = {"ok": False, "modules": {}, "error": problem}
    sources: dict[str, Any] = {}
    for label, fn in (("mlx", probe_mlx), ("torch", probe_torch)):
        try:
            sample = fn()
        except Exception as exc:
            sources[label] = {"ok": False, "error": repr(exc)[:200]}
            continue
        sources[label] = {"ok": sample is not None, "sample": sample.to_dict() if sample else None}
    nvml = probe_nvml()
    sources["nvml"] = {"ok": nvml is not None, "sample": nvml}
    return {"backends": backends, "devices": device_info(import_if_missing=False), "sources": sources}


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
    sys.stdout.write("\n")
