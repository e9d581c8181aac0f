"""'1 case', never '1 cases': the queue's title, the reports' headers and compare's summary share one rule."""

from __future__ import annotations

from vlmtui.text import plural
from vlmtui.ui.tui.presenter import queue_title
from vlmtui.ui.tui.state import SessionView


def test_plural() -> None:
    assert plural(1, "case") == "1 case"
    assert [plural(n, "case") for n in (0, 2)] == ["0 cases", "2 cases"]


def test_the_queue_title_of_one_case() -> None:
    view = SessionView()
    view.order.append("m/text/t0")
    assert queue_title(view, "") == "queue · 1 case"
