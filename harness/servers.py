"""HTTP servers serving Keyward: gunicorn (always with gunicorn.conf.py) and runserver.

gunicorn's configuration file holds the `worker_exit` hook that writes a
worker's gathered usage counts as it exits; a server started without it would
lose them at every stop. Settings a run needs on top (workers, log level,
keep-alive) go on the command line, which gunicorn reads after the file.

    with Gunicorn(production_env(database_url=…), workers=2) as server:
        answer = server.get("/api/v1/whoami", token)

`stop()` sends SIGTERM, waits for the server and everything it started, checks
the exit status and that the port no longer answers, then deletes the output file.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.base import ROOT, StartFailed, StopFailed, wait_until
from harness.ports import Port, is_listening, reserve_port
from harness.processes import Child, children

CONFIG = ROOT / "gunicorn.conf.py"


@dataclass
class Answer:
    """One HTTP answer: status, headers (as sent), body and how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


class HttpServer(Child):
    """A server process answering HTTP on `host`:`port`, in a session of its own.

    `port` is reserved from the harness's range unless given. `host` is the bind
    address; `client_host` (default: `host`, or 127.0.0.1 for a wildcard) is where
    requests go. `command_prefix` runs the server through a command that execs it
    (`ip netns exec NAME`): with a `host` inside that namespace, the server runs
    there and is reached from here.
    """

    name = "server"
    # Exit statuses of a graceful stop (SIGTERM).
    clean_statuses: tuple[int, ...] = (0,)

    def __init__(
        self,
        env: dict[str, str],
        *,
        host: str = "127.0.0.1",
        port: Port | int | None = None,
        client_host: str | None = None,
        graceful_timeout: float = 20,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.host = host
        self._port = port
        self.client_host = client_host or ("127.0.0.1" if host in ("", "0.0.0.0") else host)  # noqa: S104
        self.graceful_timeout = graceful_timeout
        super().__init__([], env=env, command_prefix=command_prefix)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} has no port before start()")
        return int(self._port)

    @property
    def url(self) -> str:
        return f"http://{self.client_host}:{self.port}"

    def server_command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> HttpServer:
        """Start the server and return once /healthz answers 200.

        Raises StartFailed, with the server's output, if it exits or stays silent.
        """
        if self._port is None or (isinstance(self._port, Port) and not self._port.reserved):
            self._port = reserve_port()
        self.command = self.server_command()
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                status = self.process.returncode
                self._fail_start(f"{self.name} exited with status {status} at start")
            if self._healthy():
                return self
            time.sleep(0.2)
        self._fail_start(f"{self.name} did not answer on {self.url}/healthz within {timeout:g} s")
        raise AssertionError("unreachable")

    def _fail_start(self, what: str) -> None:
        self.close()
        raise StartFailed(f"{what}:\n{self.output()}")

    def _healthy(self) -> bool:
        try:
            return self.get("/healthz", timeout=2).status == 200
        except OSError:
            return False

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: object | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Answer:
        """Send one request on a new connection; `body` goes as JSON, `token` as bearer key."""
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self.client_host, self.port, timeout=timeout)
        started = time.monotonic()
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            content = response.read()
        finally:
            connection.close()
        return Answer(
            response.status, dict(response.getheaders()), content, time.monotonic() - started
        )

    def get(self, path: str, token: str | None = None, timeout: float = 30) -> Answer:
        return self.request("GET", path, token, timeout=timeout)

    def stop(self, timeout: float | None = None, check: bool = True) -> int:
        """Stop gracefully (SIGTERM); return the exit status.

        With `check` (the default), raises StopFailed if the status is not a clean
        one. Always raises it if the server or a process it started outlives the
        wait, or the port still answers; the output file is deleted either way
        (`output()` keeps the text).
        """
        if self.process is None:
            return 0
        try:
            status = self.terminate_and_wait(
                signal.SIGTERM, timeout if timeout is not None else self.graceful_timeout + 15
            )
            if not wait_until(lambda: not is_listening(self.port, self.client_host, 0.5), 10):
                raise StopFailed(f"{self.url} still answers after {self.name} exited")
        finally:
            self.close()
        if check and status not in self.clean_statuses:
            raise StopFailed(f"{self.name} exited with status {status}:\n{self.output()}")
        return status

    def kill(self) -> None:
        """SIGKILL the server and everything it started, if still running; no graceful flush."""
        self.close()

    def close(self) -> None:
        super().close()
        if isinstance(self._port, Port):
            self._port.release()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Gunicorn(HttpServer):
    """A gunicorn master and its workers, configured by the repository's gunicorn.conf.py."""

    name = "gunicorn"

    def __init__(
        self,
        env: dict[str, str],
        *,
        workers: int = 1,
        worker_timeout: float = 60,
        extra_args: Sequence[str] = (),
        **options,
    ) -> None:
        super().__init__(env, **options)
        self.workers = workers
        self.worker_timeout = worker_timeout
        self.extra_args = list(extra_args)

    def server_command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", "--config", str(CONFIG)),
            *("--bind", f"{self.host}:{self.port}", "--workers", str(self.workers)),
            *("--graceful-timeout", f"{self.graceful_timeout:g}"),
            *("--timeout", f"{self.worker_timeout:g}"),
            "--no-control-socket",  # one shared socket path would collide between servers
            *self.extra_args,
        ]

    def worker_pids(self) -> set[int]:
        return set(children(self.pid))


class Runserver(HttpServer):
    """Django's development server without its autoreloader, one process."""

    name = "runserver"
    # Keyward turns SIGTERM into an exit through atexit (status 128 + 15), so that
    # the usage gathered in the process is written; 0 would be as clean.
    clean_statuses = (0, 128 + signal.SIGTERM)

    def server_command(self) -> list[str]:
        return [
            *(sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload"),
            f"{self.host}:{self.port}",
        ]
