"""The vocabulary: enums that are the log's own strings, one count, one table of how each word is shown."""

from __future__ import annotations

import json
from dataclasses import dataclass

from vlmtui import vocab
from vlmtui.memory.guard import GuardLevel as OrderedGuardLevel
from vlmtui.ui.tui.format import status_label, status_mark
from vlmtui.vocab import (
    FAILURE_STATUSES,
    LIVE_STATUSES,
    RESULT_STATUSES,
    CaseStatus,
    GuardLevel,
    count_by_status,
    counts_text,
    status_look,
)


@dataclass
class Row:
    status: str
    warmup: bool = False


def test_members_are_the_strings_the_log_holds() -> None:
    assert CaseStatus.PASSED == "passed" and f"{CaseStatus.NOT_RUN}" == "not run"
    assert json.dumps({CaseStatus.FAILED: CaseStatus.CRASHED}) == '{"failed": "crashed"}'
    assert {"aborted": 1}[CaseStatus.ABORTED] == 1, "a member finds a plain-string key and back"
    assert f"{CaseStatus.SKIPPED:<7}|" == "skipped|"
    assert CaseStatus.parse("crashed") is CaseStatus.CRASHED
    assert CaseStatus.parse(None) is CaseStatus.FAILED and CaseStatus.parse("exploded") is CaseStatus.FAILED


def test_the_statuses_an_attempt_ends_with_and_those_a_rerun_picks_up() -> None:
    assert RESULT_STATUSES == ("passed", "failed", "crashed", "aborted", "skipped")
    assert FAILURE_STATUSES == ("failed", "crashed", "aborted")
    assert all(s.is_failure for s in FAILURE_STATUSES) and not CaseStatus.PASSED.is_failure


def test_the_guard_labels_its_ordered_levels_with_the_vocabulary() -> None:
    assert [level.label for level in OrderedGuardLevel] == list(GuardLevel)
    assert all(isinstance(level.label, GuardLevel) for level in OrderedGuardLevel)


def test_count_by_status_leaves_warm_ups_out_and_keeps_an_order() -> None:
    rows = [Row("failed"), Row("passed"), Row("passed", warmup=True), Row("pending"), Row("passed")]
    assert list(count_by_status(rows).items()) == [("failed", 1), ("passed", 2), ("pending", 1)]
    counts = count_by_status(rows, zeros=LIVE_STATUSES)
    assert list(counts) == [*RESULT_STATUSES, "running", "pending"] and counts["crashed"] == 0
    assert counts_text(counts) == "2 passed, 1 failed, 1 pending"
    assert counts_text({}) == "no cases" and counts_text({}, "—") == "—"


def test_every_word_has_one_look_used_everywhere() -> None:
    for status in CaseStatus:
        look = status.look
        assert len(look.mark) == 1 and look.word and look.style and look.colour.startswith("#")
        assert status_mark(status) == (look.mark, look.style), "the dashboard shows the vocabulary's look"
    assert status_label(CaseStatus.PENDING, 2) == "· queued ×2"
    assert status_look("exploded").word == "exploded" and status_look("exploded").mark == "?"
    for table in (vocab.LEVEL_LOOKS, vocab.RUN_STATE_LOOKS, vocab.MODEL_STATE_LOOKS):
        assert all(look.word == key for key, look in table.items())
