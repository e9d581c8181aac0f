"""Where a session log may be written (engine/log_target.py): never a file that is not this suite's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmtui.engine.log_target import LogTargetError, log_target, plan_hash

IDS = ["m/a.png/p0", "m/text/t0"]


def a_log(path: Path, suite: str = "s", ids: list[str] = IDS) -> Path:
    start = {"event": "session_start", "t": 1.0, "session_id": "x", "schema_version": 1, "suite": suite,
             "suite_path": "/s.toml", "info": {}, "cases": [{"case_id": c} for c in ids]}
    path.write_text(json.dumps(start) + "\n")
    return path


def test_plan_hash_ignores_order_and_sees_a_change() -> None:
    assert plan_hash(IDS) == plan_hash(reversed(IDS))
    assert plan_hash(IDS) != plan_hash([*IDS, "m/b.png/p0"])


def test_new_empty_and_own_files_are_allowed(tmp_path: Path) -> None:
    assert log_target(tmp_path / "new.jsonl", suite_name="s", case_ids=IDS) == tmp_path / "new.jsonl"
    (tmp_path / "empty.jsonl").write_text("")
    assert log_target(tmp_path / "empty.jsonl", suite_name="s", case_ids=IDS) == tmp_path / "empty.jsonl"
    own = a_log(tmp_path / "own.jsonl")
    assert log_target(own, suite_name="s", case_ids=list(reversed(IDS))) == own


def test_a_directory_gets_a_new_file_each_time(tmp_path: Path) -> None:
    first = log_target(tmp_path, suite_name="my suite", case_ids=IDS)
    assert first.parent == tmp_path and first.name.endswith("-my-suite.jsonl") and not first.exists()
    first.write_text("")
    second = log_target(tmp_path, suite_name="my suite", case_ids=IDS)
    assert second != first and second.parent == tmp_path
    assert log_target(f"{tmp_path}/later/", suite_name="s", case_ids=IDS).parent == tmp_path / "later"


@pytest.mark.parametrize(("content", "why"), [
    ('name = "victim"\n', "not a vlmtui session log"),
    (None, "another suite ('other', this is 's')"),
    ("plan", "another plan (1 case;"),
])  # fmt: skip
def test_anything_else_is_refused_unless_forced(tmp_path: Path, content: str | None, why: str) -> None:
    path = tmp_path / "target"
    if content is None:
        a_log(path, suite="other")
    elif content == "plan":
        a_log(path, ids=IDS[:1])
    else:
        path.write_text(content)
    with pytest.raises(LogTargetError, match="name a new file or a directory, or add --force") as caught:
        log_target(path, suite_name="s", case_ids=IDS)
    assert why in str(caught.value) and "\n" not in str(caught.value)
    assert log_target(path, suite_name="s", case_ids=IDS, force=True) == path
