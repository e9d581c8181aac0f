"""The headless printer on a judged dataset, for real (scripted models in the real worker): an answer whose
grade arrives later gets one case line when it is answered and, when its judge's grade passes or fails it, one
line marked as that grade, not a second copy of its case line."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from tests.functional.test_judging import answer_id, run, write_judged_suite
from tests.functional.test_judging import script_models as script_models  # the fixture, for pytest
from vlmtui.engine.setup import prepare_session
from vlmtui.ui.headless import HeadlessPrinter


async def test_a_graded_answer_has_one_case_line_and_one_grade_line(script_models: Path, tmp_path: Path) -> None:
    suite = write_judged_suite(tmp_path, '["judge:grader", "vqa"]', tiny=False, extra="limit = 3")
    session = prepare_session(suite, log_path=tmp_path / "judged.jsonl")
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=300, highlight=False, color_system=None))
    session.scheduler.subscribe(printer)
    await run(session)
    session.log.close()
    lines = out.getvalue().splitlines()

    failed = answer_id("oracle", 2)  # "3", graded 0.2 by the grader: failed by its grade
    mentions = [line for line in lines if re.search(rf"\s{re.escape(failed)}(\s|:|$)", line)]
    assert len(mentions) == 2, "\n".join(lines)
    answered, graded = mentions
    assert answered.startswith("✓ passed") and "judge:grader awaiting its judge" in answered, answered
    assert graded.startswith(f"  ✗ graded {failed}: passed → failed"), graded
    assert graded.endswith("│ judge:grader 0.20 is under pass_at 0.5"), graded

    right = answer_id("oracle", 0)  # graded 1: stays passed, no grade line
    assert [line for line in lines if re.search(rf"\s{re.escape(right)}(\s|:|$)", line)] == [
        next(line for line in lines if line.startswith(f"✓ passed  {right} "))]
    judge = next(line for line in lines if f"grader/judge/{failed} " in line)
    assert "judge:grader 0.20" in judge and lines.index(judge) < lines.index(graded)
    assert printer.progress.tasks[0].completed == printer.progress.tasks[0].total == 12, "6 answers, 6 grades"
