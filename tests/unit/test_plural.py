"""'1 case', never '1 cases': the queue's title, the reports' headers and compare's summary share one rule."""

from __future__ import annotations

from vlmtui.text import and_more, plural
from vlmtui.ui.tui.presenter import queue_title
from vlmtui.ui.tui.state import SessionView


def test_plural() -> None:
    assert plural(1, "case") == "1 case"
    assert [plural(n, "case") for n in (0, 2)] == ["0 cases", "2 cases"]


def test_and_more() -> None:
    """The tail of a one-line message naming the first of several problems (images, dataset items, ...)."""
    assert [and_more(n) for n in (0, 1, 2, 5)] == ["", "", " (and 1 more)", " (and 4 more)"]


def test_the_queue_title_of_one_case() -> None:
    view = SessionView()
    view.order.append("m/text/t0")
    assert queue_title(view, "") == "queue · 1 case"
