"""``python -m vlmtui.worker.probe``: imports the model frameworks in a throwaway process and prints what it found.

`vlmtui doctor` runs this as a subprocess, so a broken framework install (or a Metal abort) cannot take
the command down, and vlmtui itself never imports torch or mlx.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
from typing import Any

from vlmtui.worker.frameworks import device_info, probe_mlx, probe_nvml, probe_torch

PACKAGES = {
    "transformers backend": ("torch", "transformers"),
    "mlx-vlm backend": ("mlx", "mlx_vlm"),
    "openai backend": ("openai", "httpx"),
}
_DISTRIBUTIONS = {"mlx_vlm": "mlx-vlm"}


def _import(name: str) -> dict[str, Any]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # not installed, or broken in a way worth showing
        first = (str(exc).strip().splitlines() or [""])[0]
        return {"ok": False, "error": f"{type(exc).__name__}: {first}"[:200]}
    try:
        version = importlib.metadata.version(_DISTRIBUTIONS.get(name, name))
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return {"ok": True, "version": version}


def probe() -> dict[str, Any]:
    """Backends (with versions), devices and which framework memory sources answer."""
    modules = {name: _import(name) for names in PACKAGES.values() for name in names}
    backends = {
        backend: {"ok": all(modules[n]["ok"] for n in names), "modules": {n: modules[n] for n in names}}
        for backend, names in PACKAGES.items()
    }
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
