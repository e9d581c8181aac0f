"""The memory panel's telemetry line: GPU load, watts, temperature and throttling, or why they are n/a.

The figures come from the parent's ``TelemetrySampler`` (docs/telemetry.md) inside each ``MemoryUpdate``;
what counts as hot or busy is decided here, on the display side, never where the figures are measured.
"""

from __future__ import annotations

from rich.text import Text

from vlmtui.memory.telemetry_sample import TelemetrySample

GPU_BUSY_PCT = 90.0
"""GPU utilisation at or above which the figure turns yellow (the GPU is the bottleneck)."""
HOT_C = 83.0
"""A GPU temperature (°C) at or above which it turns red: H100/H200 and Apple GPUs start slowing down near 85–90."""
NA_STYLE = "bright_black"
NOT_SLOWDOWNS = frozenset({"gpu_idle", "applications_clocks", "sw_power_cap", "sync_boost", "display_clocks"})
"""Clock reasons listed by NVML that do not make tok/s incomparable (docs/telemetry.md)."""


def gpu_sensor_c(sample: TelemetrySample) -> float | None:
    """The hottest GPU sensor (``gpu``, ``gpu0``, ``gpu1`` …), else ``None``."""
    values = [c for name, c in sample.temperatures_c if name.startswith("gpu")]
    return max(values) if values else None


def throttle_text(sample: TelemetrySample) -> Text:
    """``throttled: hw_thermal`` in red, ``clocks ok``, or a macOS CPU speed limit below 100 %."""
    text = Text()
    if sample.throttled:
        counted = [r for r in sample.throttle_reasons if r not in NOT_SLOWDOWNS]
        shown = counted[0] if counted else "yes"
        more = f" +{len(counted) - 1}" if len(counted) > 1 else ""
        text.append(f"throttled: {shown}{more}", style="bold red")
    elif sample.cpu_speed_limit_pct is not None and sample.cpu_speed_limit_pct < 100:
        text.append(f"CPU limit {sample.cpu_speed_limit_pct}%", style="yellow")
    elif sample.throttled is False:
        text.append("clocks ok", style="green")
    return text


def telemetry_text(sample: TelemetrySample | None) -> Text:
    """``GPU 87% · 412 W · 64°C · clocks ok``, or ``GPU n/a (no NVIDIA GPU)`` with the sampler's reason."""
    text = Text()
    text.append("GPU ", style="bold")
    if sample is None:
        text.append("n/a (not sampled)", style=NA_STYLE)
        return text
    parts: list[Text] = []
    if sample.gpu_util_pct is not None:
        pct = sample.gpu_util_pct
        parts.append(Text(f"{pct:.0f}%", style="yellow" if pct >= GPU_BUSY_PCT else ""))
    if sample.power_w is not None:
        parts.append(Text(f"{sample.power_w:.0f} W"))
    celsius = gpu_sensor_c(sample)
    if celsius is not None:
        parts.append(Text(f"{celsius:.0f}°C", style="bold red" if celsius >= HOT_C else ""))
    if not parts:
        reason = sample.why_unavailable("gpu_util_pct") or sample.why_unavailable("power_w") or "n/a"
        parts.append(Text(reason, style=NA_STYLE))
    throttle = throttle_text(sample)
    if throttle.plain:
        parts.append(throttle)
    return text + Text(" · ").join(parts)
