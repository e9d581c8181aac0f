"""A streamed chat completion's figures: the server's own ``timings`` where it sends them, else the client's.

llama.cpp's ``llama-server`` ends a stream with ``timings``: ``prompt_n`` (prompt tokens evaluated, image
tokens included, the cached ones apart in ``cache_n``), ``prompt_ms``, ``predicted_n``, ``predicted_ms``,
``predicted_per_second``. mlx_vlm.server (0.7.10) sends the same keys on its usage chunk, plus
``peak_memory`` (MLX's peak, in GB), and a partial ``timings`` (``predicted_per_second`` alone) on every
content chunk. Timed on the server, these leave out HTTP, the image's base64 round trip and the
client's scheduling, so they are the figures a case keeps (``metrics_source = "server"``); what the
client saw stays beside them (``client_ttft_s``).

What the client sees is no decode rate: a server may hold a stream back and deliver it in one burst
(mlx_vlm.server on the tiny model, measured: 24 tokens decoded in 62 ms reached the client within 12 ms,
1,900 tok/s by arrival times; issue 19's 6,777 tok/s is 23 tokens in 3.4 ms, the same arithmetic). A
stream without the server's timings therefore has ``gen_tps = None``. With them the figure is the server's
decode rate, which for a tiny model is genuinely thousands of tok/s (llama-server: 3,571 tok/s over 64
tokens here) while most of a case's time is the prompt, the image and HTTP: ``e2e_tps`` says that part.
``peak_memory`` of mlx_vlm.server is MLX's peak since the server started (it never resets it): it is kept
as ``server_mlx_peak_bytes``, and the case's peak is the server process tree's RSS sampled during the case
(``peak_kind = "server-rss"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openai.types import CompletionUsage

from vlmtui.worker.backends.base import GenerationStats

FULL_TIMINGS = ("prompt_n", "prompt_ms", "predicted_n")
"""The keys that make a ``timings`` object the whole request's, not a per-chunk rate."""


def full_timings(timings: object) -> Mapping[str, Any] | None:
    """``timings`` when it describes the whole request (all of ``FULL_TIMINGS`` are numbers), else ``None``."""
    if not isinstance(timings, Mapping):
        return None
    ok = all(isinstance(timings.get(key), (int, float)) and not isinstance(timings.get(key), bool)
             for key in FULL_TIMINGS)
    return timings if ok else None


def _positive(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def stream_stats(
    timings: Mapping[str, Any] | None,
    usage: CompletionUsage | None,
    *,
    chunks: int,
    client_ttft_s: float | None,
    span_s: float,
) -> GenerationStats:
    """The case's figures: from the server's full ``timings`` if any, else measured on the client.

    ``chunks``: content chunks received; ``client_ttft_s``: request to first content chunk; ``span_s``:
    first to last content chunk.
    """
    client_ttft = round(client_ttft_s, 5) if client_ttft_s is not None else None
    client: dict[str, float | int | str | None] = {"client_ttft_s": client_ttft}
    if timings is not None:
        prompt_n, prompt_ms = int(timings["prompt_n"]), float(timings["prompt_ms"])
        cached = int(timings.get("cache_n") or 0)
        peak_gb = _positive(timings.get("peak_memory"))
        gen_n = int(timings["predicted_n"])
        gen_tps = _positive(timings.get("predicted_per_second")) if gen_n > 1 else None
        if peak_gb:
            client["server_mlx_peak_bytes"] = int(peak_gb * 1e9)
        return GenerationStats(
            prompt_tokens=usage.prompt_tokens if usage is not None else prompt_n + cached,
            gen_tokens=gen_n,
            prompt_tps=prompt_n / (prompt_ms / 1000) if prompt_n and prompt_ms > 0 else None,
            gen_tps=gen_tps,
            # The server's first token comes right after its prompt pass (image encoding included).
            ttft_s=prompt_ms / 1000 if prompt_ms > 0 else None,
            metrics_source="server",
            extra=client,
        )
    prompt_tokens = usage.prompt_tokens if usage is not None else None
    gen_tokens = usage.completion_tokens if usage is not None else chunks
    return GenerationStats(
        prompt_tokens=prompt_tokens,
        gen_tokens=gen_tokens,
        prompt_tps=prompt_tokens / client_ttft_s if prompt_tokens and client_ttft_s else None,
        gen_tps=None,  # chunk arrival times are the server's delivery, not its decoding (see above)
        ttft_s=client_ttft_s,
        metrics_source="client",
        extra=client,
    )
