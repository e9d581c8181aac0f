"""The dashboard's keys acting on the engine through Controls, each saying in one line what came of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.notifications import SeverityLevel

from vlmtui.engine.controls import Controls
from vlmtui.ui.tui.presenter import Announcement
from vlmtui.ui.tui.state import SessionView

Said = tuple[str, SeverityLevel] | None
"""What to tell the user (and how loudly), or nothing."""


def rerun_selected(controls: Controls, view: SessionView, case_id: str | None) -> Said:
    """Queue a new attempt of the selected case."""
    if case_id is None:
        return None
    row = view.cases[case_id]
    if row.running or row.queued:
        return f"{case_id} is already {'running' if row.running else 'queued'}", "warning"
    if controls.rerun([case_id]):
        return f"rerun queued: {case_id} (attempt {view.cases[case_id].next_attempt})", "information"
    return None


def rerun_failed(controls: Controls) -> Said:
    """Queue a new attempt of every failed, crashed and aborted case."""
    queued = controls.rerun_failed()
    if not queued:
        return "nothing to rerun: no case failed, crashed or was aborted (or they are queued)", "information"
    plural = "s" if len(queued) > 1 else ""
    return f"rerun queued: {len(queued)} failed, crashed or aborted case{plural}", "information"


def toggle_pause(controls: Controls) -> Said:
    """Pause the queue after the running case, or resume it."""
    paused = controls.toggle_pause()
    return ("paused: the running case finishes, then the queue waits" if paused else "resumed"), "information"


def abort_running(controls: Controls) -> Said:
    """Abort the running case."""
    running = controls.abort_current("aborted by the user")
    return (f"aborting {running}" if running is not None else "nothing is running to abort"), "information"


def cleanup_now(controls: Controls) -> Said:
    """Ask the worker to free its caches."""
    if not controls.cleanup_now("requested by the user"):
        return "no worker is running: nothing to clean up", "information"
    return "cleanup requested", "information"


def save_report(log_path: Path) -> Path:
    """Write a Markdown report next to the session log (blocking: run it off the UI loop)."""
    try:
        from vlmtui.reports.report import write_report
    except ImportError as exc:
        raise RuntimeError(f"the report writer is not available in this installation ({exc})") from None
    return write_report(log_path, "md", log_path.with_suffix(".md"))


async def save_session(log_path: Path) -> tuple[tuple[Path, Path] | None, Announcement]:
    """Write the report beside the log off the UI loop; the paths written and what to tell the user."""
    try:
        report = await asyncio.to_thread(save_report, log_path)
    except Exception as exc:
        return None, Announcement(f"session log: {log_path}\nreport not written: {exc}", "error", 12)
    return (log_path, report), Announcement(f"session log: {log_path}\nreport: {report}", timeout=12, title="saved")
