"""Energy per case: NVML's counter against integrated power on the series recorded on an H200 (replayed by the
fake pynvml), macmon's watts integrated, and what the meter does with gaps, resets and no power at all."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fixtures import fake_pynvml
from tests.fixtures.recorded_mac import MACMON_V08_LOADED
from vlmtui.memory.energy import EnergyMeter
from vlmtui.memory.macmon import parse_macmon_line
from vlmtui.memory.nvml import NvmlProbe
from vlmtui.memory.telemetry_sample import TelemetrySample

SAMPLES = fake_pynvml.SAMPLES


def replayed(indices: list[int], *, counter: bool = True) -> list[TelemetrySample]:
    """The probe's samples at the recorded indices, each stamped with the time it was recorded at."""
    fake = fake_pynvml.replaying()
    probe = NvmlProbe.open(fake, use_env=False)
    assert isinstance(probe, NvmlProbe)
    out = []
    for i in indices:
        fake.index = i
        out.append(replace(probe.read(counter=counter), t=SAMPLES[i]["t"]))
    return out


def meter(samples: list[TelemetrySample]) -> EnergyMeter:
    m = EnergyMeter()
    for sample in samples:
        m.add(sample)
    return m


def counter_j(first: int, last: int) -> float:
    return (SAMPLES[last]["energy_mj"] - SAMPLES[first]["energy_mj"]) / 1000


def test_whole_recording_counter_and_integrated_power_agree() -> None:
    everything = list(range(len(SAMPLES)))
    by_counter = meter(replayed(everything)).reading(gen_tokens=1000)
    by_power = meter(replayed(everything, counter=False)).reading(gen_tokens=1000)
    assert by_counter.source == "nvml-counter" and by_power.source == "nvml-power"
    assert by_counter.energy_j == pytest.approx(counter_j(0, len(SAMPLES) - 1))  # 9480.4 J over 26 s
    assert by_counter.j_per_token == pytest.approx(by_counter.energy_j / 1000)  # type: ignore[operator]
    assert by_power.energy_j == pytest.approx(by_counter.energy_j, rel=0.01)  # recorded: 1.0024
    assert by_counter.duration_s == pytest.approx(SAMPLES[-1]["t"] - SAMPLES[0]["t"])
    assert by_counter.samples == len(SAMPLES)


def test_a_case_under_load_counter_against_power_within_the_issue_bound() -> None:
    busy = [i for i, s in enumerate(SAMPLES) if s["util_gpu"] >= 50]
    case = list(range(busy[0], busy[-1] + 1))  # 12 s of bf16 products at the 700 W cap
    by_counter = meter(replayed(case)).reading(gen_tokens=256)
    by_power = meter(replayed(case, counter=False)).reading(gen_tokens=256)
    assert by_counter.energy_j == pytest.approx(counter_j(case[0], case[-1]))
    # NVML's power on an H200 is a one-second average, so the integral lags the ramps: 0.976 recorded.
    assert by_power.energy_j == pytest.approx(by_counter.energy_j, rel=0.05)
    assert by_power.mean_power_w == pytest.approx(by_power.energy_j / by_power.duration_s)  # type: ignore[operator]
    assert 600 < by_power.mean_power_w < 700  # type: ignore[operator]


def test_the_counter_stays_exact_however_sparse_the_samples() -> None:
    # Samples 2 s apart (every 8th): the counter still gives the exact energy between its two ends, while
    # the integral of power, blind between samples, drifts further from it than at 250 ms.
    sparse = list(range(0, len(SAMPLES), 8))
    by_counter = meter(replayed(sparse)).reading()
    dense = meter(replayed(list(range(sparse[0], sparse[-1] + 1)), counter=False)).reading()
    coarse = meter(replayed(sparse, counter=False)).reading()
    exact = counter_j(sparse[0], sparse[-1])
    assert by_counter.energy_j == pytest.approx(exact)
    assert abs(coarse.energy_j - exact) > abs(dense.energy_j - exact)  # type: ignore[operator]


def test_marks_at_the_ends_are_enough_for_the_counter() -> None:
    # The sampler reads the counter only at mark() and every 2 s; between, samples carry power only.
    first, last = 45, 60
    samples = replayed([first])
    samples += replayed(list(range(first + 1, last)), counter=False)
    samples += replayed([last])
    reading = meter(samples).reading(gen_tokens=100)
    assert reading.source == "nvml-counter" and reading.energy_j == pytest.approx(counter_j(first, last))
    assert reading.samples == 2


def test_a_counter_reset_falls_back_to_power() -> None:
    # A driver reload resets the counter: the difference would be negative.
    a, b = replayed([50, 52])
    reset = replace(b, energy_j_counter=1.0)
    reading = meter([a, reset]).reading()
    assert reading.source == "nvml-power"
    assert reading.energy_j == pytest.approx((a.power_w + b.power_w) / 2 * (b.t - a.t))  # type: ignore[operator]


def test_macmon_watts_integrate_gpu_cpu_and_ane() -> None:
    samples = [parse_macmon_line(line, t=0.5 * i) for i, line in enumerate(MACMON_V08_LOADED)]
    assert all(s is not None for s in samples)
    reading = meter(samples).reading(gen_tokens=30)  # type: ignore[arg-type]
    # GPU 15, 17, 19, 17 W plus the CPU's 2.5 W, 0.5 s apart: trapezoid = 0.5 × (17.5/2 + 19.5 + 21.5 + 19.5/2)
    assert reading.source == "macmon"
    assert reading.energy_j == pytest.approx(0.5 * (17.5 / 2 + 19.5 + 21.5 + 19.5 / 2))
    assert reading.j_per_token == pytest.approx(reading.energy_j / 30)  # type: ignore[operator]
    assert reading.duration_s == pytest.approx(1.5)


def test_a_gap_in_the_readings_is_left_out_not_bridged() -> None:
    def at(t: float, watts: float | None) -> TelemetrySample:
        return TelemetrySample(t=t, power_w=watts, sources=(("power_w", "macmon"),) if watts is not None else ())

    reading = meter([at(0, 100), at(1, 100), at(2, None), at(3, 100), at(4, 100)]).reading()
    assert reading.energy_j == pytest.approx(200.0)
    assert reading.duration_s == pytest.approx(2.0) and reading.samples == 4


def test_no_power_at_all_is_no_energy() -> None:
    empty = EnergyMeter().reading(gen_tokens=10)
    assert (empty.energy_j, empty.j_per_token, empty.source) == (None, None, None)
    blind = meter([TelemetrySample(t=0), TelemetrySample(t=1)]).reading(gen_tokens=10)
    assert blind.energy_j is None and blind.duration_s == 1.0 and blind.samples == 2


def test_no_tokens_no_joules_per_token_and_late_samples_are_ignored() -> None:
    a, b = replayed([50, 51])
    m = meter([a, b])
    m.add(replace(a, t=a.t - 10))  # older than the last one: dropped
    assert len(m) == 2
    assert m.reading(gen_tokens=0).j_per_token is None
    assert m.reading().to_dict()["source"] == "nvml-counter"
