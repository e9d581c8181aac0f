"""The parent's handle on one worker subprocess: start it, send commands, receive events, see it die."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

from vlmtui.wire import protocol as p

STDERR_TAIL_LINES = 40
HELLO_TIMEOUT_S = 60.0
"""How long a starting worker may take to say hello (imports on a cold disk) before it is refused."""
TERM_GRACE_S = 2.0
"""After SIGTERM, how long a worker gets to stop, unload and exit before SIGKILL (``[guard] term_grace_s``)."""
ANSWER_S = 1.0
"""After ``Shutdown``, how long a worker gets to say it is exiting before it is taken for stuck and terminated
(``[guard] grace_s``, passed by the session)."""
UNLOAD_S = 10.0
"""After it said it is exiting, how long a worker gets to unload and exit unsignalled: the bound it keeps
itself once its stdin has closed (worker/main.py ``STDIN_CLOSED_EXIT_S``)."""

# Messages a dying worker leaves on stderr, and what they mean in plain words.
_CRASH_SIGNATURES = (
    ("kIOGPUCommandBufferCallbackErrorOutOfMemory", "Metal ran out of GPU memory (the incident's crash)"),
    ("Insufficient Memory", "Metal ran out of GPU memory"),
    ("CUDA out of memory", "CUDA ran out of GPU memory"),
    ("CUDA error: out of memory", "CUDA ran out of GPU memory"),
    ("MPS backend out of memory", "the MPS backend ran out of memory"),
    ("std::bad_alloc", "the process could not allocate memory"),
    ("Killed", "the process was killed (possibly by the out-of-memory killer)"),
)


class WorkerRefused(Exception):
    """The worker cannot be used (another protocol, no hello): one line for the user; no case runs on it."""


def worker_argv() -> list[str]:
    """The default worker command: this interpreter running ``vlmtui.worker``."""
    return [sys.executable, "-m", "vlmtui.worker"]


def describe_exit(returncode: int | None, stderr_tail: Sequence[str]) -> str:
    """One line saying how the worker died: the signal or exit code, and a known cause if seen."""
    if returncode is None:
        how = "the worker stopped answering"
    elif returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        how = f"the worker was killed by {name}"
    else:
        how = f"the worker exited with code {returncode}"
    text = "\n".join(stderr_tail)
    for needle, meaning in _CRASH_SIGNATURES:
        if needle in text:
            return f"{how}: {meaning}"
    if returncode == -signal.SIGKILL:
        return f"{how} (by the user, the guard or the out-of-memory killer)"
    last = next((line.strip() for line in reversed(stderr_tail) if line.strip()), "")
    return f"{how}: {last[:200]}" if last else how


def terminate_pid(pid: int, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM a worker by pid, SIGKILL it if it has not exited within ``grace_s``; blocks (for a thread
    whose event loop may be wedged, such as a hang-up's watchdog)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # reaped already, or not our child: ask the kernel whether it still runs
            try:
                os.kill(pid, 0)
            except OSError:
                return
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


class WorkerClient:
    """One running worker process; events go to ``on_event``, its death to ``on_exit``."""

    def __init__(
        self,
        on_event: Callable[[p.Event], None],
        on_exit: Callable[[int | None], None],
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        term_grace_s: float = TERM_GRACE_S,
    ) -> None:
        self._on_event = on_event
        self._on_exit = on_exit
        self._argv = list(argv or worker_argv())
        self._env = env
        self.term_grace_s = term_grace_s
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.hello: p.Hello | None = None
        self._greeted = asyncio.Event()
        """Set by the hello, or by the exit of a worker that never said it."""
        self._tasks: list[asyncio.Task[None]] = []
        self._expected_exit = False
        self._kill_timer: asyncio.TimerHandle | None = None
        self.retiring = False
        """SIGTERM was sent, or the worker said it is exiting: it gets no more commands."""
        self.exited = asyncio.Event()
        self._exiting = asyncio.Event()
        """The worker said it is exiting (``Exiting``): its main thread has left its command loop."""

    @property
    def pid(self) -> int | None:
        """The worker's pid while it runs."""
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process is not None and self.process.returncode is None and not self.exited.is_set()

    @property
    def usable(self) -> bool:
        """Alive and not on its way out: the next command may go to it."""
        return self.alive and not self.retiring

    async def start(self) -> None:
        """Start the worker and wait for its hello; a worker of another protocol is stopped and refused.

        The process runs in its own session, so a terminal's Ctrl-C reaches vlmtui, not the model. A worker
        that dies before its hello returns normally: its exit has been reported by then.
        """
        env = dict(os.environ if self._env is None else self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
            limit=16 * 1024 * 1024,
        )
        self._tasks = [
            asyncio.create_task(self._read_events(), name="worker-events"),
            asyncio.create_task(self._read_stderr(), name="worker-stderr"),
        ]
        try:
            await asyncio.wait_for(self._greeted.wait(), HELLO_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise WorkerRefused(f"the worker {self._executable()} did not say hello within {HELLO_TIMEOUT_S:g} s; "
                                "is it a vlmtui worker?") from None
        hello = self.hello
        if hello is not None and hello.protocol != p.PROTOCOL_VERSION:
            await self.stop()
            raise WorkerRefused(
                f"refused the worker {self._executable()}: it speaks protocol {hello.protocol} and this vlmtui "
                f"protocol {p.PROTOCOL_VERSION}, so it belongs to another installation; run the worker from "
                "the environment vlmtui runs in")

    def hand_over(self, on_event: Callable[[p.Event], None], on_exit: Callable[[int | None], None]) -> None:
        """Send this worker's events and death to new owners from now on (a spare worker taken into use)."""
        self._on_event, self._on_exit = on_event, on_exit

    def _executable(self) -> str:
        return (self.hello.executable if self.hello is not None else "") or self._argv[0]

    async def _read_events(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        while True:
            line = await stdout.readline()
            if not line:
                break
            try:
                message = p.decode_event(line)
            except p.ProtocolError as exc:
                self.stderr_tail.append(f"[vlmtui] bad line from worker: {exc}")
                continue
            if isinstance(message, p.Hello):
                self.hello = message
                self._greeted.set()
                if message.protocol != p.PROTOCOL_VERSION:
                    continue  # refused by start(); nothing of it reaches the scheduler
            self._on_event(message)
            if isinstance(message, p.Exiting):
                self.retiring = True
                self._exiting.set()
        returncode = await self.process.wait()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        # Let the stderr reader catch the last words (a Metal abort message, a traceback).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._tasks[1]), timeout=1.0)
        self.exited.set()
        self._greeted.set()
        if not self._expected_exit:
            self._on_exit(returncode)

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                return
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip("\n"))

    def send(self, command: p.Command) -> None:
        """Queue one command to the worker (no-op once it is gone or on its way out)."""
        if not self.usable or self.process is None or self.process.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.process.stdin.write(p.encode(command).encode("utf-8"))

    def terminate(self) -> None:
        """SIGTERM: the worker stops at its next token, unloads and exits 0; SIGKILL after ``term_grace_s``.

        On macOS a process SIGKILLed while it holds wired Metal memory can leave that memory wired until
        reboot; one that exits by itself gives it back. A worker stuck in a native call still dies.
        """
        self.retiring = True
        if self.process is None or self.process.returncode is not None or self._kill_timer is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        self._kill_timer = asyncio.get_running_loop().call_later(self.term_grace_s, self.kill)

    def kill(self) -> None:
        """SIGKILL the worker now (its stdin-watching children, such as a server reaper, follow)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self, answer_s: float = ANSWER_S, unload_s: float = UNLOAD_S) -> None:
        """Ask the worker to unload and exit (``Shutdown``, then its stdin closed) and wait until it has gone.

        A worker that answers (``Exiting``) within ``answer_s`` is unloading and gets ``unload_s`` to finish
        unsignalled; one that neither answers nor exits is stuck (a native call, a stopped process) and is
        ``terminate``d at once. A fixed 5 s went by before the first signal to a stuck worker (5.5 s to stop
        one with half-second graces, now 1.0 s); a worker that answered could be SIGKILLed 7 s into an unload.
        """
        self._expected_exit = True
        if self.process is None:
            return
        if self.process.returncode is None:
            self.send(p.Shutdown())
            self.retiring = True  # its answer (Exiting) is expected: no "the worker is exiting" notice
            if self.process.stdin is not None:
                with contextlib.suppress(Exception):
                    self.process.stdin.close()
            gone = asyncio.ensure_future(self.process.wait())
            answered = asyncio.ensure_future(self._exiting.wait())
            await asyncio.wait({gone, answered}, timeout=answer_s, return_when=asyncio.FIRST_COMPLETED)
            answered.cancel()
            if not gone.done() and self._exiting.is_set():
                await asyncio.wait({gone}, timeout=unload_s)
            if not gone.done():
                self.terminate()
            await gone
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 2.0)
