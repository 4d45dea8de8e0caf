"""Start real server processes on loopback for tests and bench/load.py; always stop them.

Plain Python (no pytest, no Django): the server tests and the load run share it.
A server runs in a session of its own, so `kill()` takes down gunicorn's workers too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


class ServerFailed(RuntimeError):
    """The server exited or did not answer /healthz in time; the message holds its log."""


def free_port(ports: range) -> int:
    """Return the first port in `ports` that 127.0.0.1 can bind."""
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def gunicorn_command(port: int, workers: int = 1, graceful_timeout: int = 20) -> list[str]:
    """Return the command of a gunicorn on 127.0.0.1:`port` with the project's gunicorn.conf.py."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "--graceful-timeout",
        str(graceful_timeout),
        "--no-control-socket",
    ]


def runserver_command(port: int) -> list[str]:
    return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]


class Server:
    """A server process listening on 127.0.0.1:`port`, its output in `log`."""

    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def request(
        self, method: str, path: str, token: str, timeout: float = 10
    ) -> tuple[int, dict, dict]:
        """Send one request with `token` as bearer key; return status, headers and JSON body."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.load(error)

    def get(self, path: str, token: str) -> tuple[int, dict, dict]:
        return self.request("GET", path, token)

    def stop(self, timeout: float = 30) -> int:
        """Stop gracefully (SIGTERM) and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """Kill the server and everything it started, if it still runs."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(
    command: list[str], *, port: int, env: dict[str, str], log: Path, timeout: float = 30
) -> Server:
    """Start `command` in the project directory; return once /healthz answers.

    Raises ServerFailed (after killing the process) if it exits or stays silent.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"{command[2]} exited at start:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise ServerFailed(f"{command[2]} did not answer on port {port}:\n{log.read_text()}")
