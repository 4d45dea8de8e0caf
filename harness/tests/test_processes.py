"""A child in its own session: a failed or unclean stop is reported, never swallowed."""

from __future__ import annotations

import signal
import sys

import pytest

from harness import StopFailed
from harness.environment import base_env
from harness.processes import Child, group_alive, pid_alive


def child(code: str) -> Child:
    process = Child([sys.executable, "-c", code], env=base_env())
    process.spawn()
    return process


def wait_for_line(process: Child, line: str) -> None:
    from harness import wait_until

    assert wait_until(lambda: line in process.output(), 10), process.output()


def test_a_clean_stop_returns_the_status_and_leaves_nothing_behind():
    process = child(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    wait_for_line(process, "ready")
    log = process.log_path
    assert process.terminate_and_wait(signal.SIGTERM, 10) == 0
    assert not group_alive(process.pid)
    process.close()
    assert not log.exists()  # the output file is deleted …
    assert "ready" in process.output()  # … and its text kept


def test_the_exit_status_is_returned_as_it_was():
    process = child(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    wait_for_line(process, "ready")
    assert process.terminate_and_wait(signal.SIGTERM, 10) == 3
    process.close()


def test_a_process_that_ignores_the_signal_is_reported_and_killed():
    process = child(
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    wait_for_line(process, "ready")
    with pytest.raises(StopFailed, match="did not exit within 1 s of SIGTERM"):
        process.terminate_and_wait(signal.SIGTERM, 1)
    assert not pid_alive(process.pid)
    assert not group_alive(process.pid)
    process.close()


def test_a_process_that_leaves_a_child_running_is_reported_and_the_child_killed():
    process = child(
        "import subprocess, sys\n"
        "survivor = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        "print('ready', survivor.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    wait_for_line(process, "ready")
    survivor = int(process.output().split()[1])
    with pytest.raises(StopFailed, match="left processes of its group"):
        process.terminate_and_wait(signal.SIGTERM, 10, group_timeout=1)
    assert not pid_alive(survivor)
    process.close()


def test_close_kills_whatever_still_runs():
    process = child("import time; print('ready', flush=True); time.sleep(60)")
    wait_for_line(process, "ready")
    process.close()
    assert not process.running()
    assert not group_alive(process.pid)
