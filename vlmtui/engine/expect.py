"""Whether a completed generation passes: its suite expectations, or simply a non-empty output."""

from __future__ import annotations

import re
from typing import Any

from vlmtui.units import format_bytes
from vlmtui.wire.spec import Expect


def check_expectations(expect: Expect, output: str, metrics: dict[str, Any]) -> list[str]:
    """The expectations that failed, each as one line; empty when the case passes."""
    failures: list[str] = []
    if expect.is_empty() and not output.strip():
        return ["the model produced no output"]
    lowered = output.lower()
    for needle in expect.contains:
        if needle.lower() not in lowered:
            failures.append(f"expected the output to contain {needle!r}")
    for needle in expect.not_contains:
        if needle.lower() in lowered:
            failures.append(f"expected the output not to contain {needle!r}")
    if expect.regex is not None and re.search(expect.regex, output) is None:
        failures.append(f"expected the output to match /{expect.regex}/")
    gen_tokens = metrics.get("gen_tokens")
    if expect.min_tokens is not None and (gen_tokens or 0) < expect.min_tokens:
        failures.append(f"expected at least {expect.min_tokens} tokens, got {gen_tokens or 0}")
    total_s = metrics.get("total_s")
    if expect.max_total_s is not None and total_s is not None and total_s > expect.max_total_s:
        failures.append(f"expected at most {expect.max_total_s:g} s, took {total_s:.2f} s")
    peak = metrics.get("peak_memory_bytes")
    if expect.max_peak_memory is not None and peak is not None and peak > expect.max_peak_memory:
        failures.append(
            f"expected peak memory ≤ {format_bytes(expect.max_peak_memory)}, used {format_bytes(peak)}"
        )
    return failures
