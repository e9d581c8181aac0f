"""The process exit codes, in one place: the CLI, the commands and the dashboard all return these."""

from __future__ import annotations

from collections.abc import Mapping

from vlmtui.vocab import FAILURE_STATUSES, CaseStatus

EXIT_OK = 0
"""Every planned case ran, and none failed, crashed or was aborted."""
EXIT_FAILED = 1
"""A case failed, crashed or was aborted, cases were left unrun without an interruption (a worker that could
not start), the engine itself failed, or ``compare --fail-on-regression`` found a regression."""
EXIT_USAGE = 2
"""Bad input: a suite, a log, an option, a ``--log`` that may not be written; nothing ran."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C, a hang-up, SIGTERM or the user's quit while cases were still running or waiting."""

_NOT_RUN = (CaseStatus.PENDING, CaseStatus.RUNNING, CaseStatus.NOT_RUN, CaseStatus.INTERRUPTED)


def session_exit_code(counts: Mapping[str, int], *, interrupted: bool) -> int:
    """The code of a finished session: 130 when it was interrupted with work left, else 1 when a case failed,
    crashed, was aborted or never ran, else 0. ``counts`` are cases by status (``vocab.count_by_status``)."""
    if interrupted:
        return EXIT_INTERRUPTED
    if any(counts.get(status, 0) for status in (*FAILURE_STATUSES, *_NOT_RUN)):
        return EXIT_FAILED
    return EXIT_OK
