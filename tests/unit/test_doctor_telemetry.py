"""``vlmtui doctor``'s wired-limit row and telemetry line: on this machine as it is, and on a Mac as recorded
(the framework probe's findings built from the M1 16 GB device info recorded in test_memory_budget.py)."""

from __future__ import annotations

import io
import sys
import types

import pytest
from rich.console import Console

from tests.unit.test_memory_budget import M1_16GB_MLX_DEVICE_INFO, mac_device
from vlmtui import doctor
from vlmtui.engine.setup import GuardOverrides
from vlmtui.memory.telemetry import describe_telemetry
from vlmtui.memory.telemetry_sample import NA_MACMON, NotAvailable


def doctor_output() -> str:
    out = io.StringIO()
    doctor.print_doctor(GuardOverrides(), Console(file=out, width=220, highlight=False, color_system=None))
    return out.getvalue()


def test_on_a_mac_the_wired_limit_stands_beside_the_working_set_and_telemetry_says_install_macmon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = {"backends": {}, "devices": mac_device(M1_16GB_MLX_DEVICE_INFO), "sources": {}}
    monkeypatch.setattr(doctor, "run_probe", lambda: found)
    monkeypatch.setattr(doctor, "sys", types.SimpleNamespace(platform="darwin"))
    monkeypatch.setattr(doctor, "probe_wired_limit_mb", lambda: 0)  # `sysctl -n iogpu.wired_limit_mb`: "0\n"
    monkeypatch.setattr(doctor, "describe_telemetry",
                        lambda: describe_telemetry(platform="darwin", macmon=NotAvailable(NA_MACMON)))
    out = doctor_output()
    assert "default · Metal's recommended working set 10.7 GiB" in out
    assert "Telemetry: n/a (install macmon); thermal from pmset, pressure from sysctl" in out


def test_on_this_machine_doctor_names_its_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform == "darwin":
        pytest.skip("the Mac case is above")
    monkeypatch.setattr(doctor, "run_probe", lambda: {"backends": {}, "devices": {}, "sources": {}})
    out = doctor_output()
    assert f"Telemetry: {describe_telemetry()}" in out
    assert "iogpu.wired_limit_mb" not in out  # a macOS setting: not shown elsewhere
