"""Throwaway Redis servers: no persistence, on one address (loopback by default), a reserved port.

The port stays reserved from `start()` to `destroy()`, so a fault test can kill
the server and start it again on the same address. `stop()` (SIGTERM) expects
exit status 0, `kill()` (SIGKILL, a crash) expects death by that signal; both
check that the server's process is gone and its port closed.

On another address than loopback (`host`, e.g. a bridge that network namespaces
reach), protected mode is off: without it, Redis refuses every client that does
not come from loopback, and a throwaway server has no password to give.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import socket
import time

from harness.base import HarnessError, StartFailed, StopFailed, wait_until
from harness.environment import base_env
from harness.ports import Port, is_listening, reserve_port
from harness.processes import Child


def redis_server() -> str | None:
    """Return the path of redis-server, if installed."""
    return shutil.which("redis-server")


def ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Return whether a Redis answers PING on `host`:`port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ThrowawayRedis(Child):
    """A redis-server child on `host` (127.0.0.1 by default), without persistence."""

    name = "redis"

    def __init__(
        self, *, port: Port | int | None = None, database: int = 0, host: str = "127.0.0.1"
    ) -> None:
        binary = redis_server()
        if binary is None:
            raise HarnessError("redis-server was not found")
        self.host = str(ipaddress.ip_address(host))
        self._port = port
        self.database = database
        super().__init__([binary], env=base_env())

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the Redis server has no port before start()")
        return int(self._port)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.database}"

    def start(self, timeout: float = 20) -> ThrowawayRedis:
        """Start redis-server (again, on the same port) and return once it answers PING."""
        if self.running():
            raise HarnessError(f"redis-server already runs on port {self.port}")
        if self._port is None:
            self._port = reserve_port()
        self.close()  # the previous run's output file, if any
        loopback = ipaddress.ip_address(self.host).is_loopback
        self.command = [
            self.command[0],
            *("--port", str(self.port), "--bind", self.host),
            *("--protected-mode", "yes" if loopback else "no"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                output = self.output()
                self.close()
                raise StartFailed(f"redis-server exited at start:\n{output}")
            if ping(self.port, self.host):
                return self
            time.sleep(0.05)
        self.close()
        raise StartFailed(f"redis-server did not answer PING within {timeout:g} s")

    def _ended(self, status: int, expected: int, how: str) -> None:
        output = self.output()
        self.close()
        if status != expected:
            raise StopFailed(f"redis-server {how}: exit status {status}, not {expected}\n{output}")
        if not wait_until(lambda: not is_listening(self.port, self.host, timeout=0.5), 10):
            raise StopFailed(f"redis-server {how}, but port {self.port} still answers")

    def stop(self, timeout: float = 20) -> None:
        """Shut down (SIGTERM) and check: status 0, process gone, port closed."""
        if self.process is None or (not self.running() and self._group_gone):
            return
        status = self.terminate_and_wait(signal.SIGTERM, timeout)
        self._ended(status, 0, "stopped")

    def kill(self) -> None:
        """Crash the server (SIGKILL) and check that it died of it and its port closed."""
        if self.process is None:
            raise HarnessError("redis-server was not started")
        status = self.terminate_and_wait(signal.SIGKILL, 10)
        self._ended(status, -signal.SIGKILL, "killed")

    def destroy(self) -> None:
        """Stop the server if it runs (checked) and release its port."""
        try:
            if self.running():
                self.stop()
        finally:
            self.close()
            if isinstance(self._port, Port):
                self._port.release()

    def __enter__(self) -> ThrowawayRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
