"""Telemetry probes and the sampler: NVML through a fake pynvml replaying an H200's recorded answers, macmon's
``pipe`` lines (parsed, and from a real child process in macmon's place), pmset and sysctl through recorded
outputs, and the sampler that merges them. No GPU and no Mac here: every fake is fed recorded values."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import FrozenInstanceError

import pytest

from tests.fixtures import fake_pynvml
from tests.fixtures.recorded_mac import (
    MACMON_NESTED_IDLE,
    MACMON_V06_IDLE,
    MACMON_V08_IDLE,
    PMSET_APPLE_SILICON_NOMINAL,
    PMSET_INTEL_THROTTLED,
    RecordedRunner,
)
from vlmtui.memory.macmon import MacmonReader, find_macmon, parse_macmon_line
from vlmtui.memory.nvml import SLOWDOWN_MASK, NvmlProbe, throttle_names, visible_devices
from vlmtui.memory.telemetry import TelemetrySampler, describe_telemetry
from vlmtui.memory.telemetry_sample import (
    FIGURES,
    NA_MACMON,
    NA_MACOS_ONLY,
    NA_NO_COUNTER,
    NotAvailable,
    TelemetrySample,
    combine,
)
from vlmtui.memory.thermal import parse_pmset_therm, probe_thermal

FAKE_MACMON = [sys.executable, "-m", "tests.fixtures.fake_macmon", "pipe"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDLE = 0  # recorded sample 0: idle, 81.367 W, 34 °C, gpu_idle
LOAD = fake_pynvml.phase_indices("load")[-8]  # a sample under the bf16 load, at the 700 W cap


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- the sample


def test_a_sample_is_immutable_and_round_trips_through_plain_data() -> None:
    sample = TelemetrySample(t=1.0, gpu_util_pct=99.0, power_w=691.3, energy_j_counter=9715.182,
                             temperatures_c=(("gpu", 58.0),), throttled=False, throttle_reasons=("sw_power_cap",),
                             gpu_count=1, sources=(("power_w", "nvml"),), unavailable=(("pressure_level", "n/a"),))
    with pytest.raises(FrozenInstanceError):
        sample.power_w = 0.0  # type: ignore[misc]
    assert TelemetrySample.from_dict(sample.to_dict()) == sample
    assert sample.to_dict()["temperatures_c"] == {"gpu": 58.0}
    assert sample.source("power_w") == "nvml" and sample.source("cpu_power_w") is None
    assert sample.why_unavailable("pressure_level") == "n/a" and sample.temperature("gpu") == 58.0
    assert sample.energy_power_w == 691.3
    mac = TelemetrySample(power_w=15.0, cpu_power_w=2.5, ane_power_w=0.0)
    assert mac.energy_power_w == 17.5  # GPU + CPU + ANE, macmon's "Power"
    assert TelemetrySample().energy_power_w is None


def test_combine_takes_each_figure_from_the_first_part_that_has_it_and_keeps_reasons_for_the_rest() -> None:
    gpu = TelemetrySample(t=5.0, power_w=10.0, temperatures_c=(("gpu", 40.0),), throttled=False,
                          sources=(("power_w", "macmon"), ("temperatures_c", "macmon")),
                          unavailable=(("energy_j_counter", "first reason"),))
    thermal = TelemetrySample(t=6.0, cpu_speed_limit_pct=35, throttled=True, throttle_reasons=("cpu_speed_limit",),
                              sources=(("cpu_speed_limit_pct", "pmset"), ("throttled", "pmset")),
                              unavailable=(("power_w", "ignored: power is present"),))
    late = TelemetrySample(power_w=99.0, unavailable=(("energy_j_counter", "second reason"),))
    merged = combine([gpu, thermal, late], t=7.0)
    assert merged.t == 7.0 and merged.power_w == 10.0 and merged.source("power_w") == "macmon"
    assert merged.cpu_speed_limit_pct == 35 and merged.throttled is True
    assert merged.throttle_reasons == ("cpu_speed_limit",)
    assert merged.why_unavailable("energy_j_counter") == "first reason"
    assert merged.why_unavailable("power_w") is None
    assert merged.temperatures_c == (("gpu", 40.0),)
    assert combine([TelemetrySample(throttled=False)]).throttled is False
    assert combine([TelemetrySample()]).throttled is None


# ----------------------------------------------------------------------------- NVML, replaying an H200


def test_nvml_idle_h200_as_recorded() -> None:
    probe = NvmlProbe.open(fake_pynvml.replaying(index=IDLE), use_env=False)
    assert isinstance(probe, NvmlProbe)
    sample = probe.read()
    assert sample.gpu_util_pct == 0.0
    assert sample.power_w == pytest.approx(81.367)
    assert sample.energy_j_counter == pytest.approx(3376.215)
    assert sample.temperatures_c == (("gpu", 34.0),)
    assert sample.throttle_reasons == ("gpu_idle",) and sample.throttled is False
    assert sample.gpu_count == 1
    assert {f for f, _ in sample.sources} == {"gpu_util_pct", "power_w", "energy_j_counter", "temperatures_c",
                                              "throttled"}
    assert probe.describe() == "NVML: 1 × NVIDIA H200 (utilisation, power, energy counter, throttle reasons)"


def test_nvml_under_load_at_the_power_cap_is_not_flagged_as_throttled() -> None:
    fake = fake_pynvml.replaying(index=LOAD)
    recorded = fake.at()
    sample = NvmlProbe.open(fake, use_env=False).read()  # type: ignore[union-attr]
    assert recorded["util_gpu"] >= 99 and recorded["reasons"] == 0x4
    assert sample.gpu_util_pct == recorded["util_gpu"]
    assert sample.power_w == pytest.approx(recorded["power_mw"] / 1000) and sample.power_w > 600
    assert sample.throttle_reasons == ("sw_power_cap",)
    # A datacenter GPU sits at its power cap under full load, run after run: its tok/s stays comparable.
    assert sample.throttled is False


def test_throttle_reason_names_and_which_ones_count_as_throttling() -> None:
    assert throttle_names(0) == ()
    assert throttle_names(0x1) == ("gpu_idle",)
    assert throttle_names(0x4 | 0x40) == ("sw_power_cap", "hw_thermal")
    assert throttle_names(0x1000) == ("0x1000",)  # a reason a newer driver adds is shown, not dropped
    for bits in (0x8, 0x20, 0x40, 0x80):
        assert bits & SLOWDOWN_MASK
    for bits in (0x1, 0x2, 0x4, 0x10, 0x100):
        assert not bits & SLOWDOWN_MASK


def test_a_gpu_without_an_energy_counter_is_asked_once_then_reported_unsupported() -> None:
    fake = fake_pynvml.replaying(index=LOAD, energy=False)
    probe = NvmlProbe.open(fake, use_env=False)
    assert isinstance(probe, NvmlProbe)
    for _ in range(3):
        sample = probe.read()
    assert sample.energy_j_counter is None
    assert sample.why_unavailable("energy_j_counter") == "n/a (not supported by this GPU)"
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 1
    assert sample.power_w is not None  # the rest still answers


def test_the_energy_counter_is_left_out_when_not_asked_for() -> None:
    fake = fake_pynvml.replaying(index=LOAD)
    probe = NvmlProbe.open(fake, use_env=False)
    assert isinstance(probe, NvmlProbe)
    sample = probe.read(counter=False)
    assert sample.energy_j_counter is None and "mark()" in (sample.why_unavailable("energy_j_counter") or "")
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 0


def test_a_pynvml_from_before_the_clock_event_rename_still_gives_reasons() -> None:
    fake = fake_pynvml.replaying(index=IDLE, legacy_names=True)
    assert not hasattr(fake, "nvmlDeviceGetCurrentClocksEventReasons")
    assert NvmlProbe.open(fake, use_env=False).read().throttle_reasons == ("gpu_idle",)  # type: ignore[union-attr]


def test_two_gpus_sum_power_and_energy_and_report_the_busiest() -> None:
    idle_index = fake_pynvml.phase_indices("load")[0] - 20  # GPU 1 replays 20 samples ahead: under load
    fake = fake_pynvml.replaying(index=idle_index, gpus=2)
    gpu0, gpu1 = fake.at(0), fake.at(1)
    sample = NvmlProbe.open(fake, use_env=False).read()  # type: ignore[union-attr]
    assert sample.gpu_count == 2
    assert sample.power_w == pytest.approx((gpu0["power_mw"] + gpu1["power_mw"]) / 1000)
    assert sample.energy_j_counter == pytest.approx((gpu0["energy_mj"] + gpu1["energy_mj"]) / 1000)
    assert sample.gpu_util_pct == max(gpu0["util_gpu"], gpu1["util_gpu"])
    assert sample.temperatures_c == (("gpu0", float(gpu0["temp_c"])), ("gpu1", float(gpu1["temp_c"])))


@pytest.mark.parametrize(("env", "expected"), [
    (None, None), ("", []), ("-1", []), ("1", [1]), ("0,2", [0, 2]), ("0,foo,1", [0]),
    ("GPU-00000000-0000-0000-0000-000000000001", ["GPU-00000000-0000-0000-0000-000000000001"]),
])
def test_cuda_visible_devices_as_nvml_selectors(env: str | None, expected: list[int | str] | None) -> None:
    assert visible_devices(env) == expected


def test_only_the_gpus_cuda_may_use_are_read() -> None:
    fake = fake_pynvml.replaying(index=IDLE, gpus=2)
    one = NvmlProbe.open(fake, cuda_visible="1")
    assert isinstance(one, NvmlProbe) and one.handles == [{"index": 1}]
    by_uuid = NvmlProbe.open(fake, cuda_visible=fake.uuid(0))
    assert isinstance(by_uuid, NvmlProbe) and by_uuid.handles == [{"index": 0}]
    hidden = NvmlProbe.open(fake, cuda_visible="-1")
    assert hidden == NotAvailable("n/a (no NVIDIA GPU visible)")
    assert fake.inits == 2  # the refused open shut its NVML down again


def test_a_gpu_lost_mid_run_is_a_reason_not_an_exception() -> None:
    fake = fake_pynvml.replaying(index=LOAD)
    probe = NvmlProbe.open(fake, use_env=False)
    assert isinstance(probe, NvmlProbe)
    fake.lost.add(0)
    sample = probe.read()
    assert sample.power_w is None and sample.gpu_util_pct is None
    assert sample.why_unavailable("power_w") == "n/a (NVML: GPU is lost)"
    fake.lost.clear()
    assert probe.read().power_w is not None  # not marked unsupported: it is asked again


def test_nvml_that_cannot_start_and_close_that_shuts_it_down() -> None:
    broken = fake_pynvml.replaying(init_error=fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    assert NvmlProbe.open(broken, use_env=False) == NotAvailable("n/a (NVML: Driver Not Loaded)")
    fake = fake_pynvml.replaying()
    probe = NvmlProbe.open(fake, use_env=False)
    assert isinstance(probe, NvmlProbe) and fake.inits == 1
    probe.close()
    assert fake.inits == 0


def test_without_pynvml_nvml_is_not_available_with_a_reason() -> None:
    try:
        import pynvml  # noqa: F401
    except ImportError:
        result = NvmlProbe.open()
        assert isinstance(result, NotAvailable)
        assert result.reason in ("n/a (no NVIDIA GPU)", "n/a (install nvidia-ml-py)")
    else:
        pytest.skip("pynvml is installed here")


def test_the_real_pynvml_without_a_driver_says_no_nvidia_gpu() -> None:
    """nvidia-ml-py installed (the `all` extra), no NVIDIA driver: NVML's library-not-found reads as no GPU."""
    pytest.importorskip("pynvml")
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver")
    assert NvmlProbe.open(use_env=False) == NotAvailable("n/a (no NVIDIA GPU)")


# ----------------------------------------------------------------------------- pmset


def test_pmset_on_apple_silicon_at_rest_is_no_limit_and_not_throttled() -> None:
    sample = parse_pmset_therm(PMSET_APPLE_SILICON_NOMINAL)
    assert sample is not None
    assert sample.cpu_speed_limit_pct == 100 and sample.throttled is False and sample.throttle_reasons == ()
    assert sample.source("cpu_speed_limit_pct") == "pmset"


def test_pmset_on_a_throttled_intel_mac_reads_the_speed_limit() -> None:
    sample = parse_pmset_therm(PMSET_INTEL_THROTTLED)
    assert sample is not None
    assert sample.cpu_speed_limit_pct == 35 and sample.throttled is True
    assert sample.throttle_reasons == ("cpu_speed_limit",)


def test_pmset_without_a_cpu_power_line_gives_no_limit_but_an_all_clear() -> None:
    # Fakes: the first two notes only, as older macOS printed them (no "CPU power status" note).
    sample = parse_pmset_therm("Note: No thermal warning level has been recorded\n"
                               "Note: No performance warning level has been recorded\n")
    assert sample is not None and sample.cpu_speed_limit_pct is None and sample.throttled is False
    assert sample.why_unavailable("cpu_speed_limit_pct") == "n/a (pmset reports no CPU speed limit)"


@pytest.mark.parametrize("text", ["", "pmset: unrecognized option\n", "Thermal pressure: nominal\n"])
def test_pmset_output_that_is_not_understood_is_not_guessed(text: str) -> None:
    assert parse_pmset_therm(text) is None
    sample = probe_thermal(RecordedRunner.mac(pmset=text), platform="darwin")
    assert sample.cpu_speed_limit_pct is None and sample.throttled is None
    assert sample.why_unavailable("throttled") == "n/a (pmset output not understood)"


def test_pmset_failing_or_off_macos() -> None:
    argv = ["pmset", "-g", "therm"]
    failing = RecordedRunner.mac(pmset=subprocess.TimeoutExpired(argv, 0.5))
    assert probe_thermal(failing, platform="darwin").why_unavailable("throttled") == "n/a (pmset: TimeoutExpired)"
    never = RecordedRunner({})
    assert probe_thermal(never, platform="linux").why_unavailable("cpu_speed_limit_pct") == NA_MACOS_ONLY
    assert never.calls == []


# ----------------------------------------------------------------------------- macmon pipe lines


def test_macmon_v06_line() -> None:
    sample = parse_macmon_line(MACMON_V06_IDLE, t=1.0)
    assert sample is not None and sample.t == 1.0
    assert sample.gpu_util_pct == pytest.approx(2.1497859)  # gpu_usage[1]: the frequency-scaled ratio
    assert sample.source("gpu_util_pct") == "macmon:gpu_usage"
    assert (sample.power_w, sample.cpu_power_w, sample.ane_power_w) == (0.017451683, 0.20486385, 0.0)
    assert sample.temperatures_c == (("cpu", 43.73614), ("gpu", 36.95167))
    assert sample.source("power_w") == "macmon" and sample.energy_j_counter is None


def test_macmon_v08_line_prefers_active_residency() -> None:
    sample = parse_macmon_line(MACMON_V08_IDLE)
    assert sample is not None
    assert sample.gpu_util_pct == pytest.approx(9.0)  # gpu_active_ratio, what NVML's utilisation means too
    assert sample.source("gpu_util_pct") == "macmon:gpu_active_ratio"
    assert sample.power_w == 0.017451683


def test_macmon_nested_layout() -> None:
    sample = parse_macmon_line(MACMON_NESTED_IDLE)
    assert sample is not None
    assert sample.gpu_util_pct == pytest.approx(2.1497859) and sample.source("gpu_util_pct") == "macmon:usage.gpu"
    assert (sample.power_w, sample.cpu_power_w, sample.ane_power_w) == (0.017451683, 0.20486385, 0.0)
    assert sample.temperatures_c == (("cpu", 43.73614), ("gpu", 36.95167))


@pytest.mark.parametrize("line", ["", "{not json", "[1, 2]", '{"memory": {"ram_total": 1}}',
                                  "macmon: residency state count (5) does not match DVFS table length (6)"])
def test_lines_that_are_not_macmon_readings_are_skipped(line: str) -> None:
    assert parse_macmon_line(line) is None


def test_a_zero_temperature_is_no_sensor_read() -> None:
    sample = parse_macmon_line('{"gpu_power": 1.0, "temp": {"cpu_temp_avg": 0.0, "gpu_temp_avg": 41.5}}')
    assert sample is not None and sample.temperatures_c == (("gpu", 41.5),)


def test_find_macmon_on_the_path_or_the_install_hint() -> None:
    assert find_macmon(lambda name: "/opt/homebrew/bin/macmon") == "/opt/homebrew/bin/macmon"
    assert find_macmon(lambda name: None) == NotAvailable(NA_MACMON)


# ----------------------------------------------------------------------------- macmon as a child process


def test_macmon_reader_keeps_the_latest_line_of_a_real_child_and_stops_it() -> None:
    reader = MacmonReader([*FAKE_MACMON, "-i", "100", "--lines", "loaded"]).start()
    try:
        wait_for(lambda: reader.latest().power_w is not None)
        sample = reader.latest()
        assert sample.power_w in (15.0, 17.0, 19.0) and sample.cpu_power_w == 2.5
        assert sample.gpu_util_pct == pytest.approx(96.0)
    finally:
        reader.stop()
    assert reader._process is not None and reader._process.poll() is not None


def test_macmon_that_exits_or_goes_silent_is_a_reason() -> None:
    reader = MacmonReader([*FAKE_MACMON, "-i", "100", "--count", "2", "--exit-code", "3"],
                          stale_after_s=0.3).start()
    try:
        wait_for(lambda: reader.latest().why_unavailable("power_w") == "n/a (macmon exited with 3)")
    finally:
        reader.stop()
    junk = MacmonReader([*FAKE_MACMON, "-i", "100", "--lines", "junk"]).start()
    try:
        time.sleep(0.4)
        assert junk.latest().why_unavailable("power_w") == "n/a (waiting for macmon)"
    finally:
        junk.stop()
    missing = MacmonReader(["/nonexistent/macmon", "pipe"]).start()
    assert (missing.latest().why_unavailable("gpu_util_pct") or "").startswith("n/a (macmon could not start")
    missing.stop()


def test_a_stale_reading_is_not_shown_as_current() -> None:
    reader = MacmonReader(["unused"], stale_after_s=3.0)
    reader._latest = parse_macmon_line(MACMON_V08_IDLE, t=100.0)
    assert reader.latest(now=102.0).power_w == 0.017451683
    assert reader.latest(now=110.0).why_unavailable("power_w") == "n/a (macmon silent for 10 s)"


# ----------------------------------------------------------------------------- the sampler


def test_sampler_where_nvml_cannot_start_gives_every_figure_as_a_reason() -> None:
    with TelemetrySampler(platform="linux", nvml=fake_pynvml.replaying(init_error=9)) as sampler:
        sample = sampler.sample()
    assert all(getattr(sample, f) in (None, ()) for f in FIGURES)
    assert {f for f, _ in sample.unavailable} == set(FIGURES)
    assert sample.why_unavailable("power_w") == "n/a (NVML: Driver Not Loaded)"
    assert sample.why_unavailable("pressure_level") == NA_MACOS_ONLY
    sampler.stop()  # twice is fine


def test_sampler_with_nvml_reads_in_its_thread_and_reads_the_counter_at_marks() -> None:
    fake = fake_pynvml.replaying(index=IDLE)
    sampler = TelemetrySampler(interval_ms=10_000, nvml=fake).start()  # the thread stays out of the way
    try:
        first = sampler.sample()
        assert first.power_w == pytest.approx(81.367) and first.energy_j_counter == pytest.approx(3376.215)
        calls = sum(fake.calls.values())
        assert sampler.sample().power_w == first.power_w
        assert sum(fake.calls.values()) == calls  # sample() does no I/O
        fake.index = LOAD
        marked = sampler.mark()
        assert marked.energy_j_counter == pytest.approx(fake.at()["energy_mj"] / 1000)
        assert marked.power_w is not None and marked.power_w > 600
        assert sampler.sample().power_w == marked.power_w  # the mark is the latest reading now
        assert marked.why_unavailable("pressure_level") == NA_MACOS_ONLY
    finally:
        sampler.stop()
    assert fake.inits == 0


def test_sampler_thread_keeps_nvml_fresh() -> None:
    fake = fake_pynvml.replaying(index=IDLE)
    with TelemetrySampler(interval_ms=20, nvml=fake) as sampler:
        fake.index = LOAD
        wait_for(lambda: (sampler.sample().power_w or 0) > 600)


def test_sampler_on_a_mac_without_macmon() -> None:
    runner = RecordedRunner.mac(pmset=PMSET_INTEL_THROTTLED)
    with TelemetrySampler(platform="darwin", macmon=NotAvailable(NA_MACMON), run=runner,
                          pressure_every_s=0.02) as sampler:
        sample = sampler.sample()
        assert sample.why_unavailable("power_w") == NA_MACMON
        assert sample.why_unavailable("gpu_util_pct") == NA_MACMON
        assert sample.why_unavailable("energy_j_counter") == NA_NO_COUNTER
        assert sample.cpu_speed_limit_pct == 35 and sample.throttled is True
        assert sample.pressure_level == 1 and sample.source("pressure_level") == "sysctl"
        runner.outputs[("sysctl", "-n", "kern.memorystatus_vm_pressure_level")] = "4\n"
        wait_for(lambda: sampler.sample().pressure_level == 4)  # the poller thread keeps it fresh


def test_sampler_on_a_mac_with_macmon_running() -> None:
    with TelemetrySampler(platform="darwin", macmon_argv=[*FAKE_MACMON, "-i", "100", "--lines", "loaded"],
                          run=RecordedRunner.mac()) as sampler:
        wait_for(lambda: sampler.sample().power_w is not None)
        sample = sampler.sample()
    assert sample.source("power_w") == "macmon" and sample.cpu_power_w == 2.5
    assert sample.energy_power_w == pytest.approx(sample.power_w + 2.5)  # type: ignore[operator]
    assert sample.cpu_speed_limit_pct == 100 and sample.throttled is False
    assert sample.temperature("gpu") is not None


def test_describe_telemetry_for_doctor() -> None:
    assert describe_telemetry(platform="darwin", macmon=NotAvailable(NA_MACMON)).startswith(NA_MACMON)
    assert describe_telemetry(platform="darwin", macmon="/opt/homebrew/bin/macmon").startswith(
        "macmon (/opt/homebrew/bin/macmon)")
    fake = fake_pynvml.replaying()
    assert describe_telemetry(platform="linux", nvml=fake).startswith("NVML: 1 × NVIDIA H200")
    assert fake.inits == 0
    assert describe_telemetry(platform="linux", nvml=fake_pynvml.replaying(init_error=9)) == (
        "n/a (NVML: Driver Not Loaded)")


def test_telemetry_imports_no_framework_and_no_pynvml_until_asked() -> None:
    code = textwrap.dedent("""
        import sys
        from vlmtui.memory.telemetry import TelemetrySampler
        from vlmtui.memory.telemetry_sample import NotAvailable
        assert "pynvml" not in sys.modules
        TelemetrySampler(platform="darwin", macmon=NotAvailable("x"), run=lambda argv: "1\\n").start().stop()
        TelemetrySampler().start().stop()
        heavy = [m for m in ("torch", "mlx", "transformers", "textual") if m in sys.modules]
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


def test_a_sampler_starts_once() -> None:
    sampler = TelemetrySampler(platform="linux", nvml=fake_pynvml.replaying()).start()
    with pytest.raises(RuntimeError, match="starts once"):
        sampler.start()
    sampler.stop()
    with pytest.raises(RuntimeError, match="starts once"):
        sampler.start()
