"""The memory panel's telemetry line and GPU sparklines: recorded H200 figures, throttling, and n/a here."""

from __future__ import annotations

import dataclasses
from typing import cast

from textual.app import App, ComposeResult
from textual.message_pump import MessagePump

from tests.fixtures import fake_pynvml
from tests.tui.replay import _memory
from tests.tui.test_bridge import Collector
from vlmtui.memory.telemetry import TelemetrySampler
from vlmtui.memory.telemetry_sample import TelemetrySample
from vlmtui.ui.tui.bridge import EngineBridge
from vlmtui.ui.tui.messages import MemorySampled
from vlmtui.ui.tui.widgets.memory import MemoryPanel
from vlmtui.ui.tui.widgets.summary import ModelSummaryTable, SummaryRow
from vlmtui.ui.tui.widgets.telemetry import telemetry_text
from vlmtui.vocab import ModelState

LOAD = fake_pynvml.phase_indices("load")[-8]  # under the bf16 load, at the 700 W cap


def h200_under_load() -> TelemetrySample:
    """A sample the real sampler makes from the recorded H200 under load."""
    with TelemetrySampler(platform="linux", nvml=fake_pynvml.replaying(index=LOAD)) as sampler:
        return sampler.sample()


def test_the_line_shows_gpu_percent_watts_temperature_and_clocks_from_nvml() -> None:
    sample = h200_under_load()
    assert sample.gpu_util_pct is not None and sample.power_w is not None
    line = telemetry_text(sample).plain
    assert line.startswith(f"GPU {sample.gpu_util_pct:.0f}% · {sample.power_w:.0f} W · ")
    assert line.endswith("°C · clocks ok")  # at the power cap (sw_power_cap) is not throttling


def test_a_thermal_slowdown_is_flagged_in_red_with_its_reason() -> None:
    sample = dataclasses.replace(h200_under_load(), throttled=True,
                                 throttle_reasons=("sw_power_cap", "hw_thermal", "sw_thermal"))
    text = telemetry_text(sample)
    assert text.plain.endswith("throttled: hw_thermal +1")
    assert any("red" in str(span.style) for span in text.spans)


def test_on_this_machine_the_gpu_figures_are_na_with_the_reason() -> None:
    with TelemetrySampler() as sampler:
        sample = sampler.sample()
    reason = sample.why_unavailable("gpu_util_pct")
    assert reason is not None and reason.startswith("n/a")
    assert telemetry_text(sample).plain == f"GPU {reason}"
    assert telemetry_text(None).plain == "GPU n/a (not sampled)"
    mac = TelemetrySample(unavailable=(("gpu_util_pct", "n/a (install macmon)"),), throttled=False,
                          cpu_speed_limit_pct=100)
    assert telemetry_text(mac).plain == "GPU n/a (install macmon) · clocks ok"


def test_the_bridge_keeps_a_minute_of_gpu_percent_and_watts() -> None:
    collector = Collector()
    bridge = EngineBridge(cast(MessagePump, collector), 15.0)
    sample = h200_under_load()
    for i in range(3):
        bridge(dataclasses.replace(_memory(1000.0 + i, 2**30), telemetry=dataclasses.replace(sample, t=1000.0 + i)))
    bridge(_memory(1003.0, 2**30))  # a sample without telemetry adds no GPU point
    bridge.flush()
    message = collector.messages[-1]
    assert isinstance(message, MemorySampled)
    assert message.gpu_history == (sample.gpu_util_pct,) * 3
    assert message.power_history == (sample.power_w,) * 3
    assert len(message.history) == 4


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield MemoryPanel(id="memory")


async def test_the_gpu_sparklines_appear_only_with_gpu_figures() -> None:
    app = PanelApp()
    async with app.run_test(size=(48, 14)) as pilot:
        panel = app.query_one(MemoryPanel)
        panel.sample = _memory(1000.0, 2**30)
        await pilot.pause()
        assert not panel.query_one("#gpu-trend").display and not panel.query_one("#power-trend").display
        assert panel.telemetry.plain == "GPU n/a (not sampled)"
        sample = h200_under_load()
        panel.sample = dataclasses.replace(_memory(1001.0, 2**30), telemetry=sample)
        panel.gpu_history = (10.0, 90.0, 100.0)
        panel.power_history = (80.0, 650.0, 700.0)
        await pilot.pause()
        assert panel.query_one("#gpu-trend").display and panel.query_one("#power-trend").display
        assert panel.telemetry.plain.startswith("GPU ")
        assert "W" in panel.telemetry.plain


class SummaryApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ModelSummaryTable(id="summary")


async def test_the_models_table_shows_j_per_token_only_when_measured() -> None:
    app = SummaryApp()
    async with app.run_test(size=(80, 6)) as pilot:
        table = app.query_one(ModelSummaryTable)
        row = SummaryRow("smolvlm-500m", ModelState.UNLOADED, (3, 0, 0, 0, 0), 1.9, 41.5, 2**30)
        table.rows = (row,)
        await pilot.pause()
        header = table.render_lines(table.region.reset_offset)[0]
        assert "tok/s" in header.text and "J/tok" not in header.text
        table.rows = (dataclasses.replace(row, j_per_token=0.842),)
        await pilot.pause()
        header, line = table.render_lines(table.region.reset_offset)[:2]
        assert "J/tok" in header.text and "0.842" in line.text and "41.5" in line.text
