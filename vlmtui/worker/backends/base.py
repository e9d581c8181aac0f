"""The contract every backend keeps. A backend lives in the worker process and owns one loaded model.

The worker calls ``load`` once per model, ``generate`` once per case (passing ``emit`` for each text
chunk), ``cleanup`` when the guard asks, and ``unload`` when the model's cases are done. ``emit`` may
raise (the worker's way to stop a generation between tokens); a backend must let that exception out
and stop its own generation thread if it has one.
"""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from vlmtui.memory.samples import FrameworkSample
from vlmtui.plugins.declaration import BackendDeclaration
from vlmtui.wire.spec import ModelSpec

if TYPE_CHECKING:
    from PIL.Image import Image


def one_line(exc: BaseException) -> str:
    """A foreign exception as the one line a user sees: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message alone, for messages that say what it was already
    (``CUDA out of memory. Tried to allocate …``); the type's name where there is no message."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class BackendError(Exception):
    """A problem the user can act on (model not found, remote code broken); ``str()`` is one line."""


class OutOfMemoryError(BackendError):
    """The framework refused an allocation (a catchable OOM): the case is aborted, the worker lives on."""


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of a conversation: what the user asked and what the model answered."""

    prompt: str
    output: str


@dataclass(frozen=True)
class GenerationRequest:
    """One case (or one turn of a conversation) as the backend sees it: a prompt, the conversation's earlier
    turns, and, for image cases, a prepared RGB image that belongs to the first user message."""

    case_id: str
    prompt: str
    image: Image | None
    max_tokens: int
    temperature: float
    should_stop: Callable[[], bool]
    """True once the worker wants generation to stop (abort, shutdown); check it between tokens."""
    history: tuple[Exchange, ...] = ()
    """A conversation's earlier turns, oldest first; ``prompt`` follows them. The image goes with the first
    user message only (the history's first prompt when there is one)."""

    def messages(self) -> list[tuple[str, str, bool]]:
        """The conversation as ``(role, text, carries_the_image)``: user/assistant pairs, then this prompt."""
        turns: list[tuple[str, str, bool]] = []
        for exchange in self.history:
            turns += [("user", exchange.prompt, False), ("assistant", exchange.output, False)]
        turns.append(("user", self.prompt, False))
        if self.image is not None:
            turns[0] = (turns[0][0], turns[0][1], True)
        return turns


@dataclass(frozen=True)
class GenerationStats:
    """What the backend knows about a finished generation; ``None`` where it does not know."""

    prompt_tokens: int | None = None
    gen_tokens: int | None = None
    prompt_tps: float | None = None
    gen_tps: float | None = None
    peak_memory_bytes: int | None = None
    ttft_s: float | None = None
    """Time to first token as the backend measured it (a server's own prompt time); ``None``: the worker's."""
    metrics_source: str | None = None
    """Where the figures come from when the worker did not time them: ``server`` (the server's own
    ``timings``) or ``client`` (measured on the HTTP stream); ``None`` for a model in the worker."""
    extra: dict[str, float | int | str | None] = field(default_factory=dict)
    """More metrics for the case (``client_ttft_s``)."""


@dataclass(frozen=True)
class LoadInfo:
    """What a load found: the device and dtype it chose, library versions, notes for the user."""

    device: str
    dtype: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model_type: str = ""
    """The loaded config's ``model_type``: what the model can be asked follows from it (wire/capabilities.py)."""
    no_history: str = ""
    """Why this model cannot take a conversation's earlier turns (its prompt format has no chat roles);
    ``""`` when it can. A conversation's follow-up turns are then skipped with this reason."""


class Backend(ABC):
    """One model in one framework."""

    declaration: ClassVar[BackendDeclaration | None] = None
    """What the backend declares (vlmtui.plugins); a subclass that sets it gets the name and flags below."""
    name: ClassVar[str] = ""
    supports_text_only: ClassVar[bool] = True
    """Whether a prompt without an image can run at all on this backend."""
    supports_streaming: ClassVar[bool] = True
    """Whether ``emit`` is called per token (otherwise once, with the whole output)."""
    supports_memory_limit: ClassVar[bool] = False
    """Whether ``set_memory_limit`` makes over-allocation a catchable error (it is called either way)."""
    supports_history: ClassVar[bool] = False
    """Whether ``generate`` sends ``request.history`` to the model (a conversation's follow-up turns); a
    backend that leaves it False gets its follow-up turns skipped, never answered without their history."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declaration = cls.__dict__.get("declaration")
        if declaration is not None:
            caps = declaration.capabilities
            cls.name = declaration.name
            cls.supports_text_only, cls.supports_streaming = caps.text_only, caps.streaming
            cls.supports_memory_limit = caps.memory_limit

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        declared = self.declaration
        self.options: dict[str, Any] = declared.with_defaults(spec.options) if declared else dict(spec.options)
        """The spec's options over the declared defaults."""
        self.log: Callable[[str, str], None] = lambda _level, _message: None
        """Sends ``(level, message)`` to the user and the session log while loading or generating (the
        worker sets it; a server still loading its model says so through it)."""

    @property
    def server_pid(self) -> int | None:
        """A server process holding the model's memory (the worker samples its tree's RSS), or ``None``."""
        return None

    @abstractmethod
    def load(self) -> LoadInfo:
        """Load the model (once for all of its cases); raise ``BackendError`` with one line on failure."""

    @abstractmethod
    def generate(self, request: GenerationRequest, emit: Callable[[str], None]) -> GenerationStats:
        """Generate for one case, calling ``emit`` with each text chunk as it is produced."""

    def framework_memory(self) -> FrameworkSample | None:
        """The framework's memory right now, or ``None`` where the framework reports none."""
        return None

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window (called before each case)."""

    def cleanup(self) -> None:
        """Free what can be freed without unloading: garbage, then the framework's caches (the guard's cleanup)."""
        gc.collect()

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Cap the framework's allocator so over-allocation raises instead of aborting the process."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the framework's catchable out-of-memory error."""
        return isinstance(exc, (OutOfMemoryError, MemoryError))

    @abstractmethod
    def unload(self) -> None:
        """Drop the model and clear the framework's caches."""
