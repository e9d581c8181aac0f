"""Servers vlmtui starts itself (an OpenAI-compatible model server), which can never outlive it.

Each server runs under ``python -m vlmtui.worker.reaper``, whose stdin is a pipe held only by this process:
when this process stops the server, exits, or is killed with SIGKILL, the pipe closes and the reaper
stops the server's whole process group. The server's output goes to an already-unlinked temporary
file, read back only for the tail shown in a startup error, so nothing is left on disk either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import IO
from urllib.parse import urlsplit

import httpx
import psutil

from vlmtui.worker.backends.base import BackendError

DEFAULT_HEALTH_URL = "http://127.0.0.1:{port}/v1/models"
STOP_TIMEOUT_S = 10.0
"""How long ``stop`` waits for the reaper (its own grace is 3 s) before killing the group itself."""
TAIL_LINES = 5
PORT_ATTEMPTS = 3
PORT_TAKEN = ("address already in use", "couldn't bind", "port taken")
"""How a server (uvicorn, llama-server) or this module says its port was taken before it could bind."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def describe(argv: list[str]) -> str:
    """A short name for a command in messages: the module of ``python -m mod``, else the program's name."""
    if len(argv) > 2 and argv[1] == "-m" and "python" in os.path.basename(argv[0]):
        return argv[2]
    return os.path.basename(argv[0]) or argv[0]


def fill_placeholders(argv: list[str], *, port: int, model_path: str | None) -> list[str]:
    """``argv`` with ``{port}``, ``{python}`` and ``{model_path}`` replaced (other braces left alone)."""
    filled = []
    for arg in argv:
        if "{model_path}" in arg:
            if model_path is None:
                raise BackendError(f"the server command uses {{model_path}} but the model has no path: "
                                   f"{arg!r}")
            arg = arg.replace("{model_path}", model_path)
        filled.append(arg.replace("{port}", str(port)).replace("{python}", sys.executable))
    return filled


class ManagedServer:
    """One server process started, health-checked and stopped by vlmtui, through a reaper."""

    def __init__(
        self,
        argv: list[str],
        *,
        health_url_template: str = DEFAULT_HEALTH_URL,
        startup_timeout_s: float = 120.0,
        env: Mapping[str, str] | None = None,
        model_path: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_loading: Callable[[], None] | None = None,
        error_line: Callable[[str], str] | None = None,
    ) -> None:
        if not argv:
            raise BackendError("the server command is empty")
        self.argv = list(argv)
        self.health_url_template = health_url_template
        self.startup_timeout_s = startup_timeout_s
        self.env = dict(env or {})
        """Variables set for the server on top of this process's environment."""
        self.model_path = model_path
        self.headers = dict(headers or {})
        self.on_loading = on_loading
        """Called once when the health URL first answers 503 (llama-server loading its model)."""
        self.error_line = error_line
        """Picks the one line of the server's output that says why it failed (else its last lines are shown)."""
        self.port: int | None = None
        self.base_url: str | None = None
        self.startup_s: float | None = None
        """Seconds from spawn until the health URL answered 200."""
        self._reaper: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._server_pid: int | None = None

    @property
    def server_pid(self) -> int | None:
        """The server's pid (also its process group id), for sampling its RSS; ``None`` when not running."""
        return self._server_pid if self.running else None

    @property
    def running(self) -> bool:
        """Whether the reaper, and so the server, is still up."""
        return self._reaper is not None and self._reaper.poll() is None

    def start(self) -> str:
        """Start the server and wait until its health URL answers 200; returns its base URL."""
        if self._reaper is not None:
            raise RuntimeError("ManagedServer.start() called twice")
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start_once()
            except BackendError as exc:
                # Another process took the free port between our probe and the server's bind: take another.
                retry = any("{port}" in arg for arg in self.argv) and attempt + 1 < PORT_ATTEMPTS
                if not (retry and any(words in str(exc).lower() for words in PORT_TAKEN)):
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> str:
        self.port = free_loopback_port()
        argv = fill_placeholders(self.argv, port=self.port, model_path=self.model_path)
        health_url = self.health_url_template.replace("{port}", str(self.port))
        parts = urlsplit(health_url)
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._log = tempfile.TemporaryFile(prefix="vlmtui-server-")  # noqa: SIM115 (lives until stop())
        started = time.monotonic()
        try:
            self._reaper = subprocess.Popen(
                [sys.executable, "-m", "vlmtui.worker.reaper", "--owner", str(os.getpid()), "--", *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=env,
            )
        except OSError as exc:
            self._close_log()
            raise BackendError(f"cannot start the server reaper: {exc}") from None
        try:
            assert self._reaper.stdout is not None
            line = self._reaper.stdout.readline().decode(errors="replace")
            if not line.startswith("server-pid "):
                self._reaper.wait(timeout=STOP_TIMEOUT_S)
                raise BackendError(self._failure(f"{describe(argv)} could not be started"))
            self._server_pid = int(line.split()[1])
            self._wait_healthy(describe(argv), health_url, started)
            if not self._serves_port():
                # Another process took the port and answered: never talk to (or stop) someone else's server.
                raise BackendError(f"port taken: {self.port} answered, but not from {describe(argv)}")
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self.base_url

    def _wait_healthy(self, program: str, health_url: str, started: float) -> None:
        deadline = started + self.startup_timeout_s
        last_error = "no answer yet"
        announced = False
        # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
        with httpx.Client(trust_env=False, headers=self.headers) as client:
            while True:
                assert self._reaper is not None
                code = self._reaper.poll()
                if code is not None:
                    raise BackendError(self._failure(f"{program} exited with code {code} while starting"))
                try:
                    timeout = min(2.0, max(0.05, deadline - time.monotonic()))
                    response = client.get(health_url, timeout=timeout)
                    if response.status_code == 200:
                        return
                    if response.status_code == 503 and not announced and self.on_loading is not None:
                        announced = True
                        self.on_loading()
                    last_error = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last_error = str(exc) or type(exc).__name__
                if time.monotonic() >= deadline:
                    raise BackendError(self._failure(
                        f"{program} did not answer GET {health_url} within {self.startup_timeout_s:g} s "
                        f"({last_error})"))
                time.sleep(0.1)

    def _serves_port(self) -> bool:
        """Whether the process listening on our port is the server (or one of its children).

        ``True`` where the system will not say (another user's process cannot be inspected on macOS).
        """
        if self._server_pid is None or self.port is None:
            return True
        try:
            root = psutil.Process(self._server_pid)
            tree = [root, *root.children(recursive=True)]
            for proc in tree:
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == self.port:
                        return True
        except psutil.AccessDenied:
            return True
        except psutil.Error:
            return False
        return False

    def output(self, limit: int = 65_536) -> str:
        """The last ``limit`` bytes the server (and its reaper) wrote."""
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        # pread leaves the shared file offset alone: the server writes through the same open file.
        return os.pread(fd, min(size, limit), max(0, size - limit)).decode(errors="replace")

    def output_tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last non-empty lines the server (and its reaper) wrote."""
        chunk = self.output(16_384)
        return [line.strip() for line in chunk.splitlines() if line.strip()][-lines:]

    def failure_line(self) -> str:
        """What the server's output says about its failure: its own error line, else its last lines."""
        if self.error_line is not None:
            line = self.error_line(self.output())
            if line:
                return line
        return " | ".join(self.output_tail())

    def _failure(self, what: str) -> str:
        said = self.failure_line()
        if not said:
            return f"{what}; it wrote nothing"
        return f"{what}: {said}" if self.error_line is not None else f"{what}; last output: {said}"

    def stop(self) -> None:
        """Stop the server's whole process group and wait until it is gone (its port is free then)."""
        reaper = self._reaper
        if reaper is None:
            return
        if reaper.stdin is not None:
            with contextlib.suppress(OSError):
                reaper.stdin.close()  # EOF on the reaper's stdin: it stops the group, then exits
        try:
            reaper.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()
            if self._server_pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._server_pid, signal.SIGKILL)
        if reaper.stdout is not None:
            reaper.stdout.close()
        self._reaper = None
        self._server_pid = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
