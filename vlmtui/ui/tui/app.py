"""The Textual app: runs the engine on its own loop under the dashboard and stops it cleanly on quit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from vlmtui.engine.controls import Engine, NullControls
from vlmtui.engine.events import Event
from vlmtui.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, session_exit_code
from vlmtui.ui.tui.bridge import ui_fps
from vlmtui.ui.tui.format import locale_draws_glyphs
from vlmtui.ui.tui.screens.dashboard import DashboardScreen
from vlmtui.ui.tui.screens.panes import TALL_FROM
from vlmtui.ui.tui.state import SessionView
from vlmtui.ui.tui.terminal import click_mouse_driver, set_filters

HANGUP_WATCHDOG_S = 15.0
"""After a hang-up, how long the engine gets to stop cleanly before the worker is killed."""
STOP_TIMEOUT_S = 30.0
"""How long quitting waits for the engine to stop its worker before giving up on it."""


class VlmApp(App[int]):
    """The dashboard over one engine (or over recorded events, for snapshots)."""

    CSS_PATH = "app.tcss"
    TITLE = "vlmtui"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (Textual's own attribute)
    VERTICAL_BREAKPOINTS = [(0, "-short"), (TALL_FROM, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "quit now", show=False, priority=True,
                tooltip="Quit without asking; the worker is still stopped cleanly."),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | ctrl+q | Quit without asking (the running case is aborted, the worker stopped). |
    """

    def __init__(self, engine: Engine | None = None, *, log_path: Path | None = None,
                 clock: Callable[[], float] = time.time, fps: float | None = None,
                 replay: Sequence[Event] = (), on_hangup: Callable[[], None] | None = None,
                 ascii_only: bool = False, preview: Event | None = None) -> None:
        super().__init__(driver_class=click_mouse_driver())
        set_filters(self, ascii_only=ascii_only)
        self.engine = engine
        self.on_hangup = on_hangup
        """Called (to close the session log) just before the process exits after SIGHUP."""
        self.dashboard = DashboardScreen(SessionView(), controls=engine if engine is not None else NullControls(),
                                         log_path=log_path, clock=clock, fps=fps or ui_fps())
        self._replay = list(replay)
        self._preview = preview
        """Shown before the engine runs (its planned queue): the engine starts after the first frame."""
        self.engine_task: asyncio.Task[dict[str, int]] | None = None
        self._quitting = False
        self._hung_up = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_sighup: Any = None

    async def on_mount(self) -> None:
        if self.engine is not None and self._preview is not None:
            # The planned queue is in the view before the dashboard composes: its first frame shows it.
            self.dashboard.view.apply(self._preview)
        await self.push_screen(self.dashboard)
        # Everything built so far lives as long as the app: keep the collector from walking it on
        # every full collection (a 70-80 ms stall of the loop the engine shares otherwise).
        gc.freeze()
        if self.engine is not None:
            self.engine.subscribe(self.dashboard.bridge)
            self._loop = asyncio.get_running_loop()
            # The engine's start (building its scheduler, spawning the worker) waits for the first frame.
            self.call_after_refresh(self._start_engine)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(signal.SIGTERM, self.quit_session, "terminated (SIGTERM)",
                                              EXIT_INTERRUPTED)
                # A plain handler, not the loop's: Python runs it before the SIGCONT that follows a hang-up
                # (signal 1 before 18), so Textual's SIGCONT handler can be switched off in time.
                self._previous_sighup = signal.signal(signal.SIGHUP, self._on_sighup)
        elif self._replay:
            self.dashboard.replay(self._replay)

    def _start_engine(self) -> None:
        if self.engine is None or self.engine_task is not None or self._quitting:
            return
        self.engine_task = asyncio.create_task(self.engine.run(keep_alive=True), name="scheduler")
        self.engine_task.add_done_callback(self._engine_done)

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
        """Stop the engine (aborting the running case, stopping the worker), then exit: with ``code`` when it is
        not ``EXIT_OK``; else 130 when cases were still loading, running or waiting (a quit before the queue is
        done is no success), or the finished session's own code (1 when a case failed or the engine stopped itself
        with cases left, as when no worker could start)."""
        if self._quitting:
            return
        engine_running = self.engine is not None and (self.engine_task is None or not self.engine_task.done())
        if code == EXIT_OK and engine_running and not self.dashboard.view.idle:
            code = EXIT_INTERRUPTED
        self._quitting = True
        self.dashboard.stopping = True
        self._quit(reason, code)

    def _on_sighup(self, signum: int, frame: object) -> None:
        """The terminal is gone (SSH dropped, tmux killed): stop the engine, then leave without touching it.

        Runs as a plain signal handler on the main thread. Textual redraws on the SIGCONT that a shell
        sends after a hang-up and its writes to the dead terminal can wedge the main thread, so those
        handlers are switched off and the output goes to /dev/null; the engine is then stopped on the
        loop, and a watchdog thread ends the process (killing the worker) if that cannot finish.
        """
        if self._hung_up:
            return
        self._hung_up = True
        for other in (signal.SIGCONT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(other, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
        watchdog = threading.Timer(HANGUP_WATCHDOG_S, self._hard_exit)
        watchdog.daemon = True
        watchdog.start()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._hang_up)

    def _hard_exit(self) -> None:
        """Last resort after a hang-up: end the worker (SIGTERM, then SIGKILL; its reaper then stops any
        server) and exit."""
        if self.engine is not None:
            self.engine.end_worker_now()
        os._exit(EXIT_INTERRUPTED)

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def _hang_up(self) -> None:
        self._quitting = True
        try:
            await self.stop_engine("the terminal hung up (SIGHUP)")
            if self.on_hangup is not None:
                self.on_hangup()
        finally:
            os._exit(EXIT_INTERRUPTED)

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def _quit(self, reason: str, code: int) -> None:
        await self.stop_engine(reason)
        task = self.engine_task
        final = code
        if code == EXIT_OK and task is not None:
            failed = not task.done() or task.cancelled() or task.exception() is not None
            final = EXIT_FAILED if failed else session_exit_code(task.result(), interrupted=False)
        self.exit(final, return_code=final)

    async def stop_engine(self, reason: str) -> None:
        """Stop the engine and wait for it (it stops the worker and any managed server); idempotent."""
        task, engine = self.engine_task, self.engine
        if task is None or engine is None:
            return
        if not task.done():
            engine.stop(reason)
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            except Exception:
                pass  # reported by _engine_done; the session log has the rest
        self.dashboard.bridge.close()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            if self._previous_sighup is not None and not self._hung_up:
                signal.signal(signal.SIGHUP, self._previous_sighup)


def run_app(engine: Engine, *, log_path: Path, on_hangup: Callable[[], None], ascii_only: bool | None = None,
            mouse: bool = True, preview: Event | None = None) -> int:
    """Run the dashboard over a prepared session until the user quits; returns the exit code
    (``VlmApp.quit_session``)."""
    if ascii_only is None:  # a client whose locale cannot show the glyphs (LANG=C) gets ASCII
        ascii_only = not locale_draws_glyphs(dict(os.environ))
    app = VlmApp(engine, log_path=log_path, on_hangup=on_hangup, ascii_only=ascii_only, preview=preview)

    async def main() -> int:
        try:
            await app.run_async(mouse=mouse)
        finally:
            # Whatever ended the app (a quit, an exception), the worker does not outlive it.
            await app.stop_engine("the dashboard closed")
        return app.return_code if app.return_code is not None else EXIT_OK

    return asyncio.run(main())
