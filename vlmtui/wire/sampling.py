"""How often memory is sampled while nothing runs: one rule for the guard loop (parent) and the worker's sampler."""

from __future__ import annotations

import os
from collections.abc import Mapping

IDLE_SAMPLE_MS = 1000
"""Default sampling interval while idle (``VLMTUI_IDLE_SAMPLE_MS`` overrides it)."""


def idle_sample_ms_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``VLMTUI_IDLE_SAMPLE_MS`` if it is a whole number of ms, else ``IDLE_SAMPLE_MS``."""
    raw = (os.environ if environ is None else environ).get("VLMTUI_IDLE_SAMPLE_MS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else IDLE_SAMPLE_MS
