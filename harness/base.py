"""What every part of the harness shares: the repository's root, its errors, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class HarnessError(RuntimeError):
    """Something the harness was asked to do did not happen; the message says what."""


class StartFailed(HarnessError):
    """A process exited at start or did not become ready; the message holds its output."""


class StopFailed(HarnessError):
    """A process did not stop cleanly: a bad exit status, a survivor, or a port still open."""


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Call `predicate` until it is true or `timeout` seconds passed; return its last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
