"""Expectations decide pass and fail, each failure one line."""

from __future__ import annotations

from vlmtui.engine.expect import check_expectations
from vlmtui.wire.spec import Expect


def test_no_expectations_needs_output() -> None:
    assert check_expectations(Expect(), "a cat", {}) == []
    assert check_expectations(Expect(), "  \n", {}) == ["the model produced no output"]


def test_each_expectation() -> None:
    expect = Expect(contains=("cat",), not_contains=("dog",), regex=r"\d+", min_tokens=5, max_total_s=1.0,
                    max_peak_memory=100)
    ok = check_expectations(expect, "3 Cats", {"gen_tokens": 5, "total_s": 0.5, "peak_memory_bytes": 50})
    assert ok == []
    bad = check_expectations(expect, "a dog", {"gen_tokens": 2, "total_s": 2.0, "peak_memory_bytes": 200})
    assert len(bad) == 6
    assert any("contain 'cat'" in line for line in bad) and any("/\\d+/" in line for line in bad)
