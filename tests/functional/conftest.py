"""Fixtures of the functional tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.worker_driver import WorkerDriver
from vlmtui.wire import protocol as p


@pytest.fixture
def worker() -> Iterator[WorkerDriver]:
    """A real worker subprocess, closed after the test."""
    driver = WorkerDriver()
    driver.wait_for(p.Hello, timeout_s=60)
    yield driver
    driver.close()
