"""The messages between vlmtui and its worker subprocess: one JSON object a line, both directions.

Both sides import this module, so a field added here is added for both. Every message is a frozen
dataclass with a ``type`` tag; ``encode`` and ``decode`` are the only (de)serialisers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vlmtui.vocab import Outcome

PROTOCOL_VERSION = 3
"""Bumped when a message's meaning changes; a worker speaking another version is refused (2: aborts aimed
only at their case or the idle model, SIGTERM handled, ``Exiting``; 3: ``Run.history`` for conversations,
``Loaded.no_history``)."""


# ----------------------------------------------------------------------------- parent -> worker


@dataclass(frozen=True)
class Load:
    """Load one model and keep it until ``Unload``; the worker answers ``Loaded`` or ``LoadFailed``."""

    type: ClassVar[str] = "load"
    model: dict[str, Any]
    """The model's spec as ``ModelSpec.to_dict()`` gives it."""
    memory_limit_bytes: int | None = None
    """A hard limit for the framework's allocator (MLX, torch), so over-allocation is catchable."""
    sample_ms: int = 250
    """How often the worker reports its memory, from this load on (the load's own progress included)."""


@dataclass(frozen=True)
class Run:
    """Run one case on the loaded model; the worker streams ``Token`` and ends with ``Result``."""

    type: ClassVar[str] = "run"
    case_id: str
    prompt: str
    image: str | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    history: list[dict[str, str]] = field(default_factory=list)
    """A conversation's earlier turns, ``{"prompt", "output"}`` each, oldest first; ``prompt`` follows them.
    ``image`` belongs to the first user message (the first turn's), not to ``prompt``."""


@dataclass(frozen=True)
class Abort:
    """Stop the running generation at the next token; the case ends ``aborted`` with ``reason``."""

    type: ClassVar[str] = "abort"
    case_id: str | None = None
    """The case to stop; ``None`` stops whatever runs. An abort that finds no such case (it ended, or
    nothing runs) is not kept for a later one: with ``unload`` it unloads the idle model, else it is dropped."""
    reason: str = "aborted by the user"
    unload: bool = False
    """Also unload the model after stopping (the guard's abort), answering ``Unloaded``."""


@dataclass(frozen=True)
class Cleanup:
    """Free caches now (between tokens when generating); the worker answers ``Cleaned``."""

    type: ClassVar[str] = "cleanup"
    reason: str = "requested"
    by_guard: bool = False
    """The memory guard asked (its ``Cleaned`` is a guard event), not the user."""


@dataclass(frozen=True)
class Unload:
    """Free the model and clear the framework caches; the worker answers ``Unloaded``."""

    type: ClassVar[str] = "unload"


@dataclass(frozen=True)
class Shutdown:
    """End the worker process (closing its stdin does the same)."""

    type: ClassVar[str] = "shutdown"


# ----------------------------------------------------------------------------- worker -> parent


@dataclass(frozen=True)
class Hello:
    """The worker is up; sent once, first."""

    type: ClassVar[str] = "hello"
    pid: int
    python: str
    protocol: int = PROTOCOL_VERSION
    executable: str = ""
    """The worker's ``sys.executable``, named when its protocol is refused."""


@dataclass(frozen=True)
class Loaded:
    """The model is loaded and ready."""

    type: ClassVar[str] = "loaded"
    model_id: str
    load_s: float
    device: str
    dtype: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Things the user should see about this load (remote code trusted, a workaround applied)."""
    device_info: dict[str, Any] = field(default_factory=dict)
    """``memory.frameworks.device_info()`` as the worker sees it, so the parent can size "auto" budgets
    without importing a framework itself."""
    model_type: str = ""
    """The loaded config's ``model_type`` (``""`` where there is none, as for a server's model)."""
    capabilities: list[str] = field(default_factory=list)
    """What the loaded model can be asked, ``image`` and/or ``text`` (wire/capabilities.py); empty: not known."""
    no_history: str = ""
    """Why the loaded model cannot take a conversation's earlier turns (``""``: it can); its conversations'
    follow-up turns are skipped with this reason."""


@dataclass(frozen=True)
class LoadFailed:
    """The model could not be loaded; ``error`` is one line meant for the user."""

    type: ClassVar[str] = "load_failed"
    model_id: str
    error: str
    detail: str = ""
    """A traceback, kept in the log, never shown as the error line."""


@dataclass(frozen=True)
class Token:
    """A chunk of generated text for a running case."""

    type: ClassVar[str] = "token"
    case_id: str
    text: str


@dataclass(frozen=True)
class Result:
    """A case ended inside the worker: ``completed``, ``failed`` or ``aborted``."""

    type: ClassVar[str] = "result"
    case_id: str
    outcome: Outcome
    output: str = ""
    error: str = ""
    detail: str = ""
    metrics: dict[str, float | int | str | None] = field(default_factory=dict)
    """Numbers, and ``metrics_source`` (``server`` or ``client``) where a server's figures are used."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))  # a decoded line holds the plain string


@dataclass(frozen=True)
class Memory:
    """The worker's own view of memory: its RSS and, where the framework reports it, framework memory."""

    type: ClassVar[str] = "memory"
    t: float
    """``time.time()`` when sampled, so the parent can line samples up with its own."""
    rss_bytes: int
    framework: dict[str, Any] | None = None
    """A ``FrameworkSample`` as a dict (of the loaded model, or of the one loading), or ``None`` where the
    framework reports nothing (yet)."""


@dataclass(frozen=True)
class Cleaned:
    """A cleanup ran; ``freed_bytes`` is what the guarded quantity dropped by."""

    type: ClassVar[str] = "cleaned"
    freed_bytes: int
    reason: str = ""
    by_guard: bool = False
    """Answers the guard's ``Cleanup`` (not the user's, nor the worker's own after an out-of-memory error)."""


@dataclass(frozen=True)
class Unloaded:
    """The model is gone and caches are cleared."""

    type: ClassVar[str] = "unloaded"
    model_id: str = ""


@dataclass(frozen=True)
class Exiting:
    """The worker stops taking commands and exits (SIGTERM, or stdin closed); sent before the running
    case's ``Result``, so the parent starts the next case on a fresh worker."""

    type: ClassVar[str] = "exiting"
    reason: str


@dataclass(frozen=True)
class Log:
    """A line the worker wants in the session log (not a case result)."""

    type: ClassVar[str] = "log"
    level: str
    message: str


Command = Load | Run | Abort | Cleanup | Unload | Shutdown
Event = Hello | Loaded | LoadFailed | Token | Result | Memory | Cleaned | Unloaded | Exiting | Log

_TYPES: dict[str, type[Any]] = {
    cls.type: cls
    for cls in (
        Load, Run, Abort, Cleanup, Unload, Shutdown,
        Hello, Loaded, LoadFailed, Token, Result, Memory, Cleaned, Unloaded, Exiting, Log,
    )
}


class ProtocolError(ValueError):
    """A line that is not a message of this protocol."""


def decode_event(line: str | bytes) -> Event:
    """A worker-to-parent line; a command here is a protocol error."""
    message = decode(line)
    if isinstance(message, Load | Run | Abort | Cleanup | Unload | Shutdown):
        raise ProtocolError(f"expected an event, got a {message.type} command")
    return message


def encode(message: Command | Event) -> str:
    """One message as one JSON line (with the trailing newline)."""
    payload = {"type": message.type, **dataclasses.asdict(message)}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"


def decode(line: str | bytes) -> Command | Event:
    """One JSON line back into its message; unknown fields are ignored so old peers keep working."""
    try:
        payload = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {line[:120]!r}") from exc
    if not isinstance(payload, dict) or "type" not in payload:
        raise ProtocolError(f"no message type: {line[:120]!r}")
    cls = _TYPES.get(payload.pop("type"))
    if cls is None:
        raise ProtocolError(f"unknown message type in {line[:120]!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        message: Command | Event = cls(**{k: v for k, v in payload.items() if k in names})
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad {cls.type} message: {exc}") from exc
    return message
