"""The process exit codes, in one place: the CLI, the commands and the dashboard all return these."""

from __future__ import annotations

EXIT_OK = 0
"""Every case ran, and none failed, crashed or was aborted."""
EXIT_FAILED = 1
"""A case failed, crashed or was aborted (or the engine itself failed)."""
EXIT_USAGE = 2
"""Bad input: a suite, a log, an option; nothing ran."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C, a hang-up or the user before the queue was done."""
