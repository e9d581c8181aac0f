"""The worker protocol round-trips every message, and refuses what is not one."""

from __future__ import annotations

import pytest

from vlmtui.wire import protocol as p

MESSAGES = [
    p.Load(model={"id": "m", "backend": "transformers", "path": "tiny:idefics3"}, memory_limit_bytes=10, sample_ms=50),
    p.Run(case_id="m/a.jpg/p0", prompt="Describe.", image="/x/a.jpg", max_tokens=3, temperature=0.5),
    p.Abort(case_id="c", reason="user", unload=True),
    p.Cleanup(reason="guard"), p.Unload(), p.Shutdown(),
    p.Hello(pid=1, python="3.11"),
    p.Loaded(model_id="m", load_s=1.5, device="cpu", dtype="float32", versions={"torch": "2"}, notes=["n"],
             device_info={"cpu": {"count": 2}}),
    p.LoadFailed(model_id="m", error="nope"),
    p.Token(case_id="c", text="héllo\n"),
    p.Result(case_id="c", outcome="completed", output="x", metrics={"gen_tokens": 3, "ttft_s": None}),
    p.Memory(t=1.0, rss_bytes=5, framework={"framework": "mlx", "guarded_bytes": 3}),
    p.Cleaned(freed_bytes=7), p.Unloaded(model_id="m"), p.Log(level="info", message="m"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_round_trip(message: p.Command | p.Event) -> None:
    line = p.encode(message)
    assert line.endswith("\n") and line.count("\n") == 1
    assert p.decode(line) == message


def test_unknown_fields_are_ignored_for_compatibility() -> None:
    assert p.decode('{"type":"token","case_id":"c","text":"a","new":1}') == p.Token("c", "a")


@pytest.mark.parametrize("line", ["not json", "[1]", '{"x":1}', '{"type":"nope"}', '{"type":"token"}'])
def test_bad_lines(line: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode(line)
