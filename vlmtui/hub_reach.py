"""Whether the Hugging Face hub answers from here, for ``doctor``'s one line; standard library only.

A machine without the hub (no network, a proxy that drops it) makes every hub lookup wait out its timeouts:
tiny:moondream2's load took 78.6 s instead of 27.8 s that way before tiny loads were made offline. One HTTPS
request with a short timeout says which it is, next to whether ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 3.0


def _offline_flag() -> str:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(name, "")
        if value.strip().lower() in ("1", "on", "yes", "true"):
            return f"{name}={value} (hub lookups are skipped; only the cache is used)"
    return "HF_HUB_OFFLINE not set (hub lookups and downloads allowed)"


def hub_line(timeout_s: float = TIMEOUT_S) -> str:
    """``huggingface.co reachable (0.21 s) · HF_HUB_OFFLINE not set (…)``, or why it is not reachable."""
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    started = time.monotonic()
    try:
        request = urllib.request.Request(f"{endpoint}/api/models?limit=1", method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
        reach = f"{endpoint} reachable ({time.monotonic() - started:.2f} s)"
    except urllib.error.HTTPError as exc:  # it answered: reachable, whatever the status
        reach = f"{endpoint} reachable (HTTP {exc.code}, {time.monotonic() - started:.2f} s)"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        reach = f"{endpoint} not reachable within {timeout_s:g} s ({reason})"
    return f"{reach} · {_offline_flag()}"
