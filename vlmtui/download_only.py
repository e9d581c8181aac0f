"""``vlmtui run --download-only SUITE``: fetch every hub model of a suite now, so a long run can start later offline.

Each model goes through what a run does before its load (engine/downloads.py): resolved by the hub helper,
fit-checked on the hub's sizes (one that cannot fit is skipped unless ``force = true``), then fetched with a
progress bar. Nothing is loaded. Exit 0 when every hub model is in the cache, 1 when one failed, 130 when
stopped (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from vlmtui.engine.downloads import Downloads, hub_download_applies
from vlmtui.engine.selection import select_models
from vlmtui.engine.setup import GuardOverrides
from vlmtui.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from vlmtui.memory.budget import resolve_budget
from vlmtui.memory.system import probe_system
from vlmtui.suite.loader import SuiteError, load_suite
from vlmtui.ui.download_bar import DownloadBar
from vlmtui.wire.spec import ModelSpec


async def _fetch_all(downloads: Downloads, models: Sequence[ModelSpec], budget_bytes: int,
                     console: Console) -> tuple[int, int]:
    """Prepare each model in turn: (failed, skipped); failed is -1 when Ctrl-C stopped it."""
    failed = skipped = 0
    loop = asyncio.get_running_loop()
    stopped: list[str] = []

    def on_signal() -> None:
        stopped.append("interrupted (Ctrl-C)")
        downloads.cancel("interrupted (Ctrl-C)")

    loop.add_signal_handler(signal.SIGINT, on_signal)
    try:
        for model in models:
            if stopped:
                break
            if not hub_download_applies(model):
                console.print(f"  {escape(model.id)}: nothing to download ({escape(str(model.source))})")
                continue
            prepared = await downloads.prepare(model, budget_bytes)
            if prepared.skip_reason:
                skipped += 1
                console.print(f"  [yellow]{escape(model.id)}: {escape(prepared.skip_reason)}[/]")
            elif prepared.error:
                failed += 1
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return (-1 if stopped else failed), skipped


def download_only(suite_path: str, overrides: GuardOverrides, *, only: Sequence[str] = (),
                  skip: Sequence[str] = (), console: Console | None = None) -> int:
    """Fetch the suite's hub models (SuiteError for a bad suite or budget, for the caller's one line)."""
    console = console or Console(highlight=False)
    suite = select_models(load_suite(suite_path), only, skip)
    guard = overrides.apply(suite.guard)
    try:
        budget = resolve_budget(guard.budget, {}, probe_system().total)
    except ValueError as exc:
        raise SuiteError(f"--budget: {exc}") from None
    bar = DownloadBar(console)
    downloads = Downloads(bar)
    console.print(f"[bold]vlmtui[/] downloading the hub models of {escape(suite.name)} · budget {budget}")
    try:
        failed, skipped = asyncio.run(_fetch_all(downloads, suite.models, budget.bytes, console))
    finally:
        bar.stop()
    if failed < 0:
        console.print("stopped")
        return EXIT_INTERRUPTED
    fetched = sum(downloads.download_s.values())
    console.print(f"done: {len(downloads.download_s)} model(s) in the Hugging Face cache ({fetched:.1f} s "
                  f"downloading), {failed} failed, {skipped} skipped by the fit check")
    return EXIT_FAILED if failed else EXIT_OK
