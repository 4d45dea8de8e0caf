"""A child process in a session of its own, its output in a file, stopped and checked.

The child leads a new session (and so a new process group): whatever it starts
(gunicorn's workers) can be found and killed with it, and a Ctrl-C meant for
the test run does not reach it first. Its standard output and error go to a
temporary file that `output()` reads and `close()` deletes, keeping the text.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.base import ROOT, StopFailed, wait_until


def group_alive(pgid: int) -> bool:
    """Return whether any process of group `pgid` still exists (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Return whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True  # no /proc: trust kill()
    return status != "Z"


def children(pid: int) -> list[int]:
    """Return the pids of the direct children of `pid` (Linux)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Child:
    """A command running from the repository's root in its own session.

    `command_prefix` runs the command through another one that must end by
    exec-ing it, so that the pid is the command's own: `ip netns exec NAME`,
    `nsenter …`, `taskset -c 1`. Signals go to that pid.
    """

    name = "process"

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str],
        command_prefix: Sequence[str] = (),
        cwd: Path = ROOT,
    ) -> None:
        self.command = list(command)
        self.command_prefix = list(command_prefix)
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._kept_output = ""
        self._group_gone = False

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        """Start the command, its output going to a new temporary file."""
        self._group_gone = False
        descriptor, path = tempfile.mkstemp(prefix=f"kw_harness_{self.name}_", suffix=".log")
        self.log_path = Path(path)
        with os.fdopen(descriptor, "wb") as log:
            self.process = subprocess.Popen(
                [*self.command_prefix, *self.command],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """Return everything the process wrote so far (kept after `close()`)."""
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._kept_output

    def terminate_and_wait(self, sig: int, timeout: float, group_timeout: float = 10) -> int:
        """Send `sig` to the process, wait for it and every process of its group; return status.

        Raises StopFailed, after killing the whole group, if the process outlives
        `timeout` seconds or leaves a process of its group behind `group_timeout` more.
        """
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise StopFailed(
                f"{self.name} (pid {self.pid}) did not exit within {timeout:g} s of "
                f"{signal.Signals(sig).name}; killed.\n{self.output()}"
            ) from None
        if not wait_until(lambda: not group_alive(self.pid), group_timeout):
            self.kill_group()
            raise StopFailed(
                f"{self.name} exited ({status}) but left processes of its group "
                f"{self.pid} running; killed.\n{self.output()}"
            )
        self._group_gone = True
        return status

    def kill_group(self) -> None:
        """SIGKILL the process and everything in its group, and reap it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._group_gone = wait_until(lambda: not group_alive(self.pid), 10)

    def close(self) -> None:
        """Kill whatever still runs, keep the output in memory and delete its file."""
        if self.process is not None and not self._group_gone:
            self.kill_group()
        if self.log_path is not None:
            self._kept_output = self.output()
            self.log_path.unlink(missing_ok=True)
            self.log_path = None
