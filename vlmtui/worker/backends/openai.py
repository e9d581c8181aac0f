"""A model behind an OpenAI-compatible server: one vlmtui starts (``server = "llama.cpp" | "mlx-vlm"``,
server_presets.py, or any ``command``) or one already running (``base_url``).

Generation is a streamed chat completion through the ``openai`` client. Where the server sends its own
``timings`` (llama-server, mlx_vlm.server), the case's figures are the server's (server_timings.py).
Otherwise token counts come from the server's usage chunk (``stream_options.include_usage``), or one
token per content chunk; TTFT is what the client sees (request to first content chunk, including HTTP
and image decoding), and prompt tok/s is prompt tokens over TTFT. The server's memory is not the
worker's: ``server_pid`` names the process whose RSS the worker samples.
"""

from __future__ import annotations

import base64
import gc
import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from vlmtui.plugins.builtin import OPENAI
from vlmtui.wire.spec import ModelSpec
from vlmtui.worker.backends.base import Backend, BackendError, GenerationRequest, GenerationStats, LoadInfo
from vlmtui.worker.backends.server_presets import ServerLaunch, server_launch
from vlmtui.worker.backends.server_timings import full_timings, stream_stats
from vlmtui.worker.servers import ManagedServer
from vlmtui.worker.tree_peak import TreePeak, with_tree_peak

READ_TIMEOUT_S = 600.0
"""Longest wait for the next byte of a response (a big prompt on a slow machine prefills for minutes)."""


def root_url(base_url: str) -> str:
    """``http://host:port`` from a base URL written with or without ``/v1`` and a trailing slash."""
    url = base_url.strip().rstrip("/")
    return url.removesuffix("/v1")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` squeezed onto one line and cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def image_data_url(image: Any) -> str:
    """A PIL image as a lossless PNG data URL (the server sees the same pixels as local backends)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pick_model(models: list[dict[str, Any]], served_model: str | None, path: str) -> str:
    """The model name to request: the spec's, else the one the server says is loaded, else its first."""
    if served_model:
        return served_model
    ids = [str(m["id"]) for m in models if isinstance(m, dict) and m.get("id")]
    # mlx_vlm.server also lists every model in the Hugging Face cache (sorted); it marks the loaded one.
    loaded = [str(m["id"]) for m in models if isinstance(m, dict) and m.get("id") and m.get("loaded") is True]
    return (loaded or ids or [path])[0]


def chat_messages(request: GenerationRequest) -> list[ChatCompletionMessageParam]:
    """The messages array: a conversation's user/assistant turns, then this prompt; the image (a data URL) in the
    first user message only. The server prefills the whole array again each turn unless it caches prefixes."""
    messages: list[ChatCompletionMessageParam] = []
    for role, text, with_image in request.messages():
        if role == "assistant":
            messages.append({"role": "assistant", "content": text})
        elif with_image and request.image is not None:
            parts: list[ChatCompletionContentPartParam] = [
                {"type": "image_url", "image_url": {"url": image_data_url(request.image)}},
                {"type": "text", "text": text},
            ]
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": text})
    return messages


class OpenAIBackend(Backend):
    """A model served over the OpenAI chat-completions API."""

    declaration = OPENAI
    supports_history = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.base_url: str | None = None
        self.model_name: str | None = None
        self._server: ManagedServer | None = None
        self._client: openai.OpenAI | None = None
        self._usage_supported = True
        self._request_extra: dict[str, Any] = {}
        """Fields the started server's requests carry beyond the OpenAI API (ServerLaunch.request_extra)."""

    @property
    def server_pid(self) -> int | None:
        """The managed server's pid (the root of the process tree to sample RSS of); ``None`` otherwise."""
        return self._server.server_pid if self._server is not None else None

    def _headers(self) -> dict[str, str]:
        key = self.options["api_key"]
        return {"Authorization": f"Bearer {key}"} if key else {}

    def load(self) -> LoadInfo:
        """Start the server (or find the running one) and choose the model name to request."""
        spec, options = self.spec, self.options
        notes: list[str] = []
        launch = server_launch(spec, options, self.name, say=lambda message: self.log("info", message))
        if launch is not None:
            base = self._start(launch)
            self._request_extra = dict(launch.request_extra)
            notes += [*launch.notes, f"{launch.program} started in {self._server_startup_s():.1f} s"]
        elif options["base_url"]:
            base = root_url(options["base_url"])
        else:
            raise BackendError(f"{spec.id}: an openai model needs server = \"llama.cpp\" | \"mlx-vlm\", "
                               "command = [...] or base_url")
        try:
            models, server_header = self._list_models(base)
        except BaseException:
            self.unload()
            raise
        self.base_url = base
        self.model_name = pick_model(models, options["served_model"], spec.path)
        notes.append(f"requests model {self.model_name!r}")
        self._client = openai.OpenAI(
            base_url=f"{base}/v1",
            api_key=options["api_key"] or "no-key",  # the client insists on a key; local servers ignore it
            max_retries=0,  # a retry would run the whole generation again and skew every timing
            timeout=openai.Timeout(READ_TIMEOUT_S, connect=10.0),
            # Managed servers are on 127.0.0.1: never route them through a proxy from the environment.
            http_client=openai.DefaultHttpxClient(trust_env=False) if self._server is not None else None,
        )
        versions = {"openai": openai.__version__, "httpx": httpx.__version__}
        if server_header:
            versions["server"] = server_header
        return LoadInfo(device=f"server {base}", versions=versions, notes=notes)

    def _start(self, launch: ServerLaunch) -> str:
        """Start the managed server and wait until it answers; its base URL."""
        server = ManagedServer(
            launch.argv, health_url_template=launch.health_url, startup_timeout_s=self.options["startup_timeout_s"],
            env=launch.env, model_path=launch.model_path, headers=self._headers(), error_line=launch.error_line,
            on_loading=lambda: self.log("info", f"{launch.program} is loading {self.spec.id} "
                                                "(GET /health answers 503 until it is ready)"),
        )
        # Known before it answers: starting is when a server loads its model, and the worker's sampler
        # reports the RSS of ``server_pid``'s process tree during the load too.
        self._server = server
        try:
            return server.start()
        except BaseException:
            self._server = None
            raise

    def _server_startup_s(self) -> float:
        server = self._server
        return server.startup_s if server is not None and server.startup_s is not None else 0.0

    def _list_models(self, base: str) -> tuple[list[dict[str, Any]], str]:
        """``GET /v1/models``: the listed models and the ``Server`` header, or a one-line BackendError."""
        url = f"{base}/v1/models"
        try:
            with httpx.Client(timeout=10.0, trust_env=self._server is None, headers=self._headers()) as http:
                response = http.get(url)
            response.raise_for_status()
            data = response.json().get("data", [])
        except httpx.HTTPStatusError as exc:
            raise BackendError(f"no OpenAI-compatible server answers at {base}: GET /v1/models gave "
                               f"HTTP {exc.response.status_code}") from None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise BackendError(f"no OpenAI-compatible server answers at {base}: "
                               f"{one_line(str(exc) or type(exc).__name__)}") from None
        models = [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []
        return models, response.headers.get("server", "")

    def generate(self, request: GenerationRequest, emit: Callable[[str], None]) -> GenerationStats:
        """Stream one chat completion, emitting each non-empty content delta."""
        if self._client is None or self.model_name is None:
            raise BackendError("the openai backend has no server: load() first")
        messages = chat_messages(request)
        started = time.perf_counter()
        peak = TreePeak(self.server_pid).start()  # the server tree's RSS while it answers (worker/tree_peak.py)
        try:
            stream = self._open_stream(messages, request)
        except BaseException:
            peak.stop()
            raise
        first: float | None = None
        last = started
        chunks = 0
        usage: CompletionUsage | None = None
        timings: dict[str, Any] | None = None
        try:
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                # llama-server's last chunk, mlx_vlm.server's usage chunk: the request's own timings.
                timings = dict(full) if (full := full_timings((chunk.model_extra or {}).get("timings"))) else timings
                text = "".join(c.delta.content or "" for c in chunk.choices if c.delta is not None)
                if text:
                    last = time.perf_counter()
                    first = last if first is None else first
                    chunks += 1
                    emit(text)
                if request.should_stop():
                    break
        except openai.APIError as exc:  # the client wraps transport errors too
            raise BackendError(self._error_line(exc)) from None
        finally:
            stream.close()  # also on emit's abort: drops the connection so the server stops generating
            peak.stop()
        return with_tree_peak(stream_stats(timings, usage, chunks=chunks,
                                           client_ttft_s=first - started if first is not None else None,
                                           span_s=last - first if first is not None else 0.0),
                              peak.bytes if self.server_pid else None)

    def _open_stream(self, messages: list[ChatCompletionMessageParam],
                     request: GenerationRequest) -> openai.Stream[Any]:
        assert self._client is not None and self.model_name is not None
        try:
            try:
                return self._client.chat.completions.create(
                    model=self.model_name, messages=messages, stream=True, max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    stream_options={"include_usage": True} if self._usage_supported else openai.omit,
                    extra_body=self._request_extra or None,
                )
            except openai.BadRequestError as exc:
                if not self._usage_supported or "stream_options" not in str(exc):
                    raise
                self._usage_supported = False  # an older server that rejects the field: count chunks
                return self._client.chat.completions.create(
                    model=self.model_name, messages=messages, stream=True, max_tokens=request.max_tokens,
                    temperature=request.temperature, extra_body=self._request_extra or None,
                )
        except openai.APIError as exc:
            raise BackendError(self._error_line(exc)) from None

    def _error_line(self, exc: openai.APIError) -> str:
        """One line for a failed request, with the managed server's last output if it died."""
        if isinstance(exc, openai.APIStatusError):
            what = f"server answered HTTP {exc.status_code}: {one_line(self._status_message(exc))}"
        elif isinstance(exc, openai.APITimeoutError):
            what = f"server at {self.base_url} sent nothing for {READ_TIMEOUT_S:g} s"
        else:
            what = f"lost the server at {self.base_url}: {one_line(str(exc))}"
        if self._server is not None and not self._server.running:
            tail = self._server.output_tail()
            what += f"; the server exited; last output: {' | '.join(tail)}" if tail else "; the server exited"
        return what

    @staticmethod
    def _status_message(exc: openai.APIStatusError) -> str:
        body = exc.body
        if isinstance(body, dict):
            for key in ("message", "detail", "error"):
                value = body.get(key)
                if isinstance(value, dict):
                    value = value.get("message")
                if value:
                    return str(value)
        return exc.message

    def cleanup(self) -> None:
        """Nothing is held here beyond garbage; the server manages its own caches."""
        gc.collect()

    def unload(self) -> None:
        """Close the client and stop the managed server (a server given by ``base_url`` is left running)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.stop()
            self._server = None
