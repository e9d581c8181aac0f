"""``vlmtui doctor``: what this machine can run — backends, llama-server, devices, memory sources, the budget;
``vlmtui doctor SUITE``: what the suite's models weigh and what is left to download from the hub.

The backends are every registered plug-in (vlmtui.plugins), each with the packages it declares; they
are imported by ``vlmtui.worker.probe`` in a throwaway process, never here.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlmtui import __version__
from vlmtui.engine.setup import GuardOverrides
from vlmtui.hub_reach import hub_line
from vlmtui.llamacpp import find_llama_server, how_to_get, llama_server_gpus, llama_server_version
from vlmtui.memory.budget import Budget, resolve_budget
from vlmtui.memory.preflight import FootprintEstimate, check_fit, hub_cache_dir
from vlmtui.memory.system import probe_pressure, probe_system, probe_wired_limit_mb
from vlmtui.memory.telemetry import describe_telemetry
from vlmtui.plugins import BackendNotFound, find_backend
from vlmtui.suite.loader import GuardConfig, SuiteError
from vlmtui.units import format_bytes
from vlmtui.wire.spec import ModelSpec

PROBE_TIMEOUT_S = 120


def run_probe() -> dict[str, Any]:
    """The framework probe's findings, from a subprocess; an ``error`` key when it failed."""
    try:
        done = subprocess.run([sys.executable, "-m", "vlmtui.worker.probe"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"the framework probe did not answer in {PROBE_TIMEOUT_S} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the framework probe exited with {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


FOUND_IN = {"env": "$VLMTUI_LLAMA_SERVER", "PATH": "PATH", "cache": "vlmtui's cache"}


def llama_server_status() -> str:
    """Where llama-server is (env, PATH or vlmtui's cache), its version and devices, or how to get it (markup)."""
    found = find_llama_server()
    if found is None:
        return (f"[red]not found[/] (not on PATH, not in vlmtui's cache, $VLMTUI_LLAMA_SERVER unset): "
                f"{escape(how_to_get())}")
    path, where = found
    gpus = llama_server_gpus(path)
    devices = f"offloads to {', '.join(gpus)}" if gpus else "CPU only"
    return (f"[green]found[/] in {FOUND_IN[where]}: {escape(str(path))} · version "
            f"{escape(llama_server_version(path))} · {escape(devices)}")


def build_llama_server(console: Console | None = None) -> int:
    """``vlmtui doctor --build-llama-server``: build and cache it when absent (progress lines), say where it is.

    One on the PATH (Homebrew's) or named by $VLMTUI_LLAMA_SERVER is used as it is: nothing to build.
    """
    from vlmtui.llamacpp_build import build_llama_server as build

    console = console or Console(highlight=False)
    found = find_llama_server()
    if found is None or found[1] == "cache":
        build(lambda line: console.print(f"[dim]{escape(line)}[/]"))  # LlamaBuildError: one line, for the caller
    console.print(f"[bold]llama-server[/]: {llama_server_status()}")
    return 0


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def print_doctor(overrides: GuardOverrides, console: Console | None = None) -> int:
    """Print the doctor's tables; returns 0 (1 when no backend can run at all)."""
    console = console or Console(highlight=False)
    guard = overrides.apply(GuardConfig())
    console.print(f"[bold]vlmtui {__version__}[/] · Python {platform.python_version()} · {platform.platform()}")
    found = run_probe()
    if "error" in found:
        console.print(f"[red]{found['error']}[/]")
        found = {"backends": {}, "devices": {}, "sources": {}}

    backends = Table(title="Backends", title_justify="left")
    for column in ("backend", "usable", "modules", "registered by"):
        backends.add_column(column)
    for name, info in found["backends"].items():
        mods = ", ".join(
            f"{m} {v['version']}" if v["ok"] else f"{m}: [red]{v['error']}[/]" for m, v in info["modules"].items()
        )
        if "error" in info:  # a plug-in that could not be loaded at all
            mods = f"[red]{escape(info['error'])}[/]"
        backends.add_row(name, _mark(info["ok"]), mods, escape(info.get("origin", "")))
    console.print(backends)
    console.print(f"[bold]llama-server[/] (server = \"llama.cpp\"): {llama_server_status()}")

    devices = found["devices"]
    table = Table(title="Devices", title_justify="left")
    table.add_column("device")
    table.add_column("available")
    table.add_column("detail")
    metal = devices.get("metal")
    table.add_row("Metal (MLX)", _mark(bool(metal)), (
        f"{metal.get('device_name') or ''} recommended working set "
        f"{format_bytes(metal.get('max_recommended_working_set_size'))}") if metal else "")
    mps = devices.get("mps")
    table.add_row("MPS (torch)", _mark(bool(mps)),
                  f"recommended max {format_bytes(mps.get('recommended_max_memory'))}" if mps else "")
    cuda = devices.get("cuda") or []
    table.add_row("CUDA (torch)", _mark(bool(cuda)),
                  "; ".join(f"{d['name']} {format_bytes(d['total_memory'])}" for d in cuda))
    mlx = devices.get("mlx")
    table.add_row("CPU", _mark(True), f"{devices.get('cpu', {}).get('count', '?')} cores"
                  + (f"; MLX computes on {mlx['backend']}" if mlx else ""))
    console.print(table)

    system = probe_system()
    pressure = probe_pressure()
    wired = probe_wired_limit_mb()
    memory = Table(title="Memory sources", title_justify="left")
    memory.add_column("source")
    memory.add_column("readable")
    memory.add_column("now")
    memory.add_row("system (psutil)", _mark(True),
                   f"{format_bytes(system.used)} used of {format_bytes(system.total)}, "
                   f"{format_bytes(system.available)} available; swap {format_bytes(system.swap_used)}")
    memory.add_row("macOS memory pressure", _mark(pressure is not None),
                   pressure.name if pressure else "only on macOS (sysctl kern.memorystatus_vm_pressure_level)")
    if sys.platform == "darwin":
        # Side by side: raising iogpu.wired_limit_mb raises what Metal recommends, which is what mlx-vlm wires.
        recommended = (metal or {}).get("max_recommended_working_set_size")
        memory.add_row("iogpu.wired_limit_mb", _mark(wired is not None),
                       ("default" if wired == 0 else f"{wired} MB" if wired else "unreadable")
                       + f" · Metal's recommended working set {format_bytes(recommended)}")
    for label, info in found["sources"].items():
        sample = info.get("sample")
        detail = ""
        if label in ("mlx", "torch") and sample:
            detail = f"{sample['framework']} on {sample['device']}: {format_bytes(sample['guarded_bytes'])}"
        elif label == "nvml" and sample:
            detail = f"{len(sample.get('devices', []))} GPU(s), driver {sample.get('driver')}"
        elif "error" in info:
            detail = info["error"]
        memory.add_row(f"{label} probe", _mark(bool(info.get("ok"))), detail)
    console.print(memory)
    console.print(f"[bold]Telemetry[/]: {escape(describe_telemetry())}")
    console.print(f"[bold]Hub[/]: {escape(hub_line())}")

    try:
        budget = resolve_budget(guard.budget, devices, system.total)
    except ValueError as exc:
        raise SuiteError(f"--budget: {exc}") from None
    limits = budget.thresholds(guard.warn, guard.cleanup, guard.abort)
    console.print(f"[bold]Memory budget[/]: {budget} · warn {format_bytes(limits.warn_bytes)} "
                  f"({guard.warn:g}%) · cleanup {format_bytes(limits.cleanup_bytes)} ({guard.cleanup:g}%) · "
                  f"abort {format_bytes(limits.abort_bytes)} ({guard.abort:g}%)")
    usable = any(info["ok"] for info in found["backends"].values())
    return 0 if usable else 1


def print_cache_report(suite_path: str, overrides: GuardOverrides, console: Console | None = None) -> int:
    """``vlmtui doctor SUITE``: each model's size, whether the Hugging Face cache holds it, what is left to download
    and whether it fits the budget; the hub is asked by the hub helper (engine/downloads.py), never here."""
    import asyncio

    from vlmtui.engine.downloads import Downloads
    from vlmtui.memory.preflight import estimate_footprint
    from vlmtui.suite.loader import load_suite

    console = console or Console(highlight=False)
    suite = load_suite(suite_path)
    guard = overrides.apply(suite.guard)
    try:
        budget = resolve_budget(guard.budget, {}, probe_system().total)
    except ValueError as exc:
        raise SuiteError(f"--budget: {exc}") from None
    downloads = Downloads(lambda event: None)
    table = Table(title=f"Models of {suite_path} · budget {budget}", title_justify="left")
    for column in ("model", "source", "size", "cached", "to download", "needs", "fits"):
        table.add_column(column)
    to_fetch, fetching, unknown = 0, 0, []
    for model in suite.models:
        source = model.source
        if not source.is_hub:
            estimate = None if source.is_tiny else estimate_footprint(source, allow_network=False)
            where = "tiny model, built here" if source.is_tiny else "local"
            size = format_bytes(estimate.weights_bytes) if estimate else "—"
            table.add_row(escape(model.id), escape(str(source)), size, where, "—", *_fit_cells(model, estimate, budget))
            continue
        resolved = asyncio.run(downloads.resolve(model))
        if resolved.error is not None:
            unknown.append(f"  [red]{escape(model.id)}[/]: {escape(resolved.error)}")
            table.add_row(escape(model.id), escape(str(source)), "—", "—", "[red]unknown (below)[/]", "—", "—")
            continue
        plan = resolved.plan
        files, missing = plan["files"], int(plan["missing_bytes"])
        held = sum(1 for f in files if f["cached"])
        if model.backend == "openai":
            cached, missing = "llama-server's own cache", 0
        else:
            cached = "[green]yes[/]" if not missing else f"{held} of {len(files)} files"
        to_fetch += missing
        fetching += bool(missing)
        table.add_row(escape(model.id), escape(f"{source.name}@{plan['revision']}"), format_bytes(plan["total_bytes"]),
                      cached, format_bytes(missing), *_fit_cells(model, resolved.estimate, budget))
    console.print(table)
    for line in unknown:
        console.print(line, soft_wrap=True)
    sized = f"; {len(unknown)} could not be sized (above)" if unknown else ""
    console.print(f"[bold]To download[/]: {format_bytes(to_fetch)} for {fetching} of {len(suite.models)} model(s)"
                  f" into {escape(str(hub_cache_dir()))}{sized}", soft_wrap=True)
    return 0


def _preflight_applies(model: ModelSpec) -> bool:
    try:
        return find_backend(model.backend).preflight
    except BackendNotFound:
        return False


def _fit_cells(model: ModelSpec, estimate: FootprintEstimate | None, budget: Budget) -> tuple[str, str]:
    """The memory a load is expected to need, and whether that fits the budget (``—`` where no preflight applies:
    a server's memory, or a size not known)."""
    if estimate is None or not _preflight_applies(model):
        return "—", "—"
    verdict = check_fit(estimate, budget.bytes, 0)
    return f"~{format_bytes(estimate.estimated_bytes)}", "[green]yes[/]" if verdict.fits else "[red]no[/]"
