"""The headless printer lists a conversation's turns under its case line, one line each."""

from __future__ import annotations

import io

from rich.console import Console

from tests.conversation_replay import ABORTED, PROMPTS, SKIPPED, case_id, finished_session
from vlmtui.ui.headless import HeadlessPrinter


def test_each_turn_gets_a_line_under_its_conversation() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=250, highlight=False, color_system=None))
    for event in finished_session()[0]:
        printer(event)
    lines = out.getvalue().splitlines()
    lake = next(i for i, line in enumerate(lines) if case_id("smolvlm-500m", "lake") in line)
    assert lines[lake].lstrip().startswith("✗ failed")
    turns = lines[lake + 1: lake + 4]
    assert [line.split("│")[0].strip().split(" · ")[0] for line in turns] == [
        "✓ turn 1/3 pass", "✗ turn 2/3 fail", "✓ turn 3/3 pass"]
    assert "38.5 tok/s" in turns[1] and "expected the output to match (?i)red|blue" in turns[1]
    assert turns[1].endswith("│ Green and grey.")
    text = "\n".join(lines)
    assert f"· turn 3/3 not run — {ABORTED.removeprefix('not run: ')}" in text
    assert f"    – turn 3/3 skip — {SKIPPED}\n" in text + "\n"  # the reason once: no answer to quote after it
    assert PROMPTS[0] not in text  # prompts stay in the log and the reports; a line says how the turn went
