"""How a hub download reads in one line: the dashboard's model rows, the headless lines (download_bar.py)."""

from __future__ import annotations

from rich.markup import escape

from vlmtui.engine.events import DownloadFinished, DownloadProgress
from vlmtui.units import format_bytes


def download_brief(event: DownloadProgress) -> str:
    """A download in flight for a model's row or the header: ``download 45% · 380 KiB/s · ETA 2 s``."""
    done = (f"{100 * event.downloaded / event.total:.0f}%" if event.total else format_bytes(event.downloaded))
    text = f"download {done}" + _rate(event)
    if event.eta_s is not None:
        text += f" · ETA {_duration(event.eta_s)}"
    return text


def download_status(event: DownloadProgress) -> str:
    """A download in flight in a few words: ``download smol 480 KiB of 940 KiB · 380 KiB/s · ETA 2 s``."""
    text = f"download {event.model} {format_bytes(event.downloaded)} of {format_bytes(event.total)}" + _rate(event)
    if event.eta_s is not None:
        text += f" · ETA {_duration(event.eta_s)}"
    return text


def _rate(event: DownloadProgress) -> str:
    """`` · 380 KiB/s``; `` · stalled`` once no byte came for the helper's rate window (vlmtui.worker.hub)."""
    if event.rate_bps:
        return f" · {format_bytes(event.rate_bps)}/s"
    return " · stalled" if event.rate_bps == 0.0 and event.downloaded > 0 else ""


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def download_line(event: DownloadFinished) -> str:
    """One line (markup) for a download's end: what came, how fast, or why it failed."""
    name = escape(event.model)
    if event.error:
        return f"  [red]download of {name} failed:[/] {escape(event.error)}"
    if event.from_cache:
        return f"  {name}: all files in the Hugging Face cache"
    rate = f" ({format_bytes(event.downloaded / event.seconds)}/s)" if event.seconds > 0 else ""
    return f"  downloaded {name}: {format_bytes(event.downloaded)} in {event.seconds:.1f} s{rate}"
