"""A hub download shown without the dashboard: a Rich progress bar on a terminal, a line at each end elsewhere.

Fed the engine's ``DownloadProgress`` and ``DownloadFinished`` events (issue 18): bytes, total, rate and ETA
as the hub helper measured them. Used by ``vlmtui run --download-only`` and the headless printer.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn
from rich.progress import TimeRemainingColumn as RemainingColumn

from vlmtui.engine.events import DownloadFinished, DownloadProgress, Event
from vlmtui.units import format_bytes


def download_brief(event: DownloadProgress) -> str:
    """A download in flight for a model's row or the header: ``download 45% · 380 KiB/s · ETA 2 s``."""
    done = (f"{100 * event.downloaded / event.total:.0f}%" if event.total else format_bytes(event.downloaded))
    text = f"download {done}" + _rate(event)
    if event.eta_s is not None:
        text += f" · ETA {_duration(event.eta_s)}"
    return text


def download_status(event: DownloadProgress) -> str:
    """A download in flight in a few words: ``download smol 480 KiB of 940 KiB · 380 KiB/s · ETA 2 s``."""
    text = f"download {event.model} {format_bytes(event.downloaded)} of {format_bytes(event.total)}" + _rate(event)
    if event.eta_s is not None:
        text += f" · ETA {_duration(event.eta_s)}"
    return text


def _rate(event: DownloadProgress) -> str:
    """`` · 380 KiB/s``; `` · stalled`` once no byte came for the helper's rate window (vlmtui.worker.hub)."""
    if event.rate_bps:
        return f" · {format_bytes(event.rate_bps)}/s"
    return " · stalled" if event.rate_bps == 0.0 and event.downloaded > 0 else ""


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def download_line(event: DownloadFinished) -> str:
    """One line (markup) for a download's end: what came, how fast, or why it failed."""
    name = escape(event.model)
    if event.error:
        return f"  [red]download of {name} failed:[/] {escape(event.error)}"
    if event.from_cache:
        return f"  {name}: all files in the Hugging Face cache"
    rate = f" ({format_bytes(event.downloaded / event.seconds)}/s)" if event.seconds > 0 else ""
    return f"  downloaded {name}: {format_bytes(event.downloaded)} in {event.seconds:.1f} s{rate}"


class DownloadBar:
    """Draws one bar per model being downloaded while it runs (a terminal), and prints each download's end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TextColumn("ETA"), RemainingColumn(), console=console, transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, DownloadProgress):
            task = self._tasks.get(event.model)
            if task is None:
                if not self.live:
                    self.console.print(f"  downloading {escape(event.model)}: {format_bytes(event.total)}",
                                       soft_wrap=True)
                    self._tasks[event.model] = TaskID(-1)
                    return
                self.progress.start()
                task = self._tasks[event.model] = self.progress.add_task(f"download {event.model}", total=event.total)
            if self.live:
                self.progress.update(task, completed=event.downloaded, total=event.total)
        elif isinstance(event, DownloadFinished):
            task = self._tasks.pop(event.model, None)
            if task is not None and self.live:
                self.progress.remove_task(task)
                if not self._tasks:
                    self.progress.stop()
            self.console.print(download_line(event), soft_wrap=not self.live)

    def stop(self) -> None:
        """Take the bars off the screen (the run ended or was stopped)."""
        if self.live:
            self.progress.stop()
