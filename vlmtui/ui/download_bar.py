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
from vlmtui.ui.download_text import download_line
from vlmtui.units import format_bytes


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
