"""The Textual app: runs the scheduler on its own loop under the dashboard and stops it cleanly on quit."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from vlmtui.events import Event
from vlmtui.tui.bridge import ui_fps
from vlmtui.tui.screens.dashboard import DashboardScreen
from vlmtui.tui.state import SessionView

if TYPE_CHECKING:
    from vlmtui.scheduler import Scheduler
    from vlmtui.session.setup import Session

EXIT_OK, EXIT_ENGINE_FAILED, EXIT_INTERRUPTED = 0, 1, 130
STOP_TIMEOUT_S = 30.0
"""How long quitting waits for the scheduler to stop its worker before giving up on it."""


class VlmApp(App[int]):
    """The dashboard over one scheduler (or over recorded events, for snapshots)."""

    CSS_PATH = "app.tcss"
    TITLE = "vlmtui"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (Textual's own attribute)
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "quit now", show=False, priority=True,
                tooltip="Quit without asking; the worker is still stopped cleanly."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | ctrl+q | Quit without asking (the running case is aborted, the worker stopped). |
    """

    def __init__(self, scheduler: Scheduler | None = None, *, log_path: Path | None = None,
                 clock: Callable[[], float] = time.time, fps: float | None = None,
                 replay: Sequence[Event] = ()) -> None:
        super().__init__()
        self.scheduler = scheduler
        view = SessionView.from_scheduler(scheduler) if scheduler is not None else SessionView()
        self.dashboard = DashboardScreen(view, scheduler=scheduler, log_path=log_path, clock=clock,
                                         fps=fps or ui_fps())
        self._replay = list(replay)
        self.engine_task: asyncio.Task[dict[str, int]] | None = None
        self._quitting = False

    async def on_mount(self) -> None:
        await self.push_screen(self.dashboard)
        if self.scheduler is not None:
            self.scheduler.subscribe(self.dashboard.bridge)
            self.engine_task = asyncio.create_task(self.scheduler.run(keep_alive=True), name="scheduler")
            self.engine_task.add_done_callback(self._engine_done)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, self.quit_session, f"signal {signum.name}", EXIT_INTERRUPTED)
        elif self._replay:
            self.dashboard.replay(self._replay)

    def _engine_done(self, task: asyncio.Task[dict[str, int]]) -> None:
        if task.cancelled() or self._quitting:
            return
        error = task.exception()
        if error is not None:
            self.notify(f"the engine stopped: {error!r}; the session log has what ran", severity="error",
                        timeout=30)

    def on_dashboard_screen_quit_requested(self, message: DashboardScreen.QuitRequested) -> None:
        self.quit_session(message.reason, EXIT_OK)

    async def action_quit(self) -> None:
        self.quit_session("quit by the user (ctrl+q)", EXIT_OK)

    def quit_session(self, reason: str, code: int) -> None:
        """Stop the scheduler (aborting the running case, stopping the worker), then exit with ``code``."""
        if self._quitting:
            return
        self._quitting = True
        self.dashboard.stopping = True
        self._quit(reason, code)

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def _quit(self, reason: str, code: int) -> None:
        await self.stop_engine(reason)
        task = self.engine_task
        failed = task is not None and task.done() and not task.cancelled() and task.exception() is not None
        final = EXIT_ENGINE_FAILED if failed and code == EXIT_OK else code
        self.exit(final, return_code=final)

    async def stop_engine(self, reason: str) -> None:
        """Stop the scheduler and wait for it (it stops the worker and any managed server); idempotent."""
        task, scheduler = self.engine_task, self.scheduler
        if task is None or scheduler is None:
            return
        if not task.done():
            scheduler.stop(reason)
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            except Exception:
                pass  # reported by _engine_done; the session log has the rest
        self.dashboard.bridge.close()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)


def run_app(session: Session) -> int:
    """Run the dashboard over a prepared session until the user quits; returns the exit code (0 on ``q``)."""
    app = VlmApp(session.scheduler, log_path=session.log.path)

    async def main() -> int:
        try:
            await app.run_async()
        finally:
            # Whatever ended the app (a quit, an exception), the worker does not outlive it.
            await app.stop_engine("the dashboard closed")
        return app.return_code if app.return_code is not None else EXIT_OK

    return asyncio.run(main())
