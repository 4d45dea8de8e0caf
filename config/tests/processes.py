"""Throwaway PostgreSQL clusters, Redis servers and gunicorn processes for fault tests.

Each starts on its own port, in its own temporary directory, and is torn down by
its `stop()` whatever happened, so a fault test never touches the shared
PostgreSQL on 5432 or the shared Redis on 6379.

Ports stay below Linux's ephemeral range (32768-60999): a port in it, such as
55432, is now and then held by some client connection on a busy machine (a load
test churns thousands), and PostgreSQL then cannot bind it.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
HTTP_PORTS = range(18600, 18690)
POSTGRES_PORTS = range(18699, 18689, -1)  # the top of the range, counting down


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port(ports: range = HTTP_PORTS) -> int:
    for port in ports:
        if port_is_free(port):
            return port
    raise RuntimeError(f"No free port in {ports}.")


def postgres_port() -> int:
    """Return KEYWARD_FAULT_PG_PORT if set, else a free port at the top of 18600-18699."""
    return int(os.environ.get("KEYWARD_FAULT_PG_PORT") or free_port(POSTGRES_PORTS))


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def postgres_bin() -> Path | None:
    """Return the directory of PostgreSQL's server programs, if installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on its own port, trusting local users."""

    port: int = field(default_factory=postgres_port)
    bin_dir: Path | None = field(default_factory=postgres_bin)
    directory: Path = field(init=False)

    def __post_init__(self) -> None:
        if self.bin_dir is None:
            raise FileNotFoundError("initdb")
        self.directory = Path(tempfile.mkdtemp(prefix="kw_sec_pg_"))

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/keyward"

    def _as_postgres(self, *args: str) -> list[str]:
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._as_postgres(*args), capture_output=True, timeout=120)
        if result.returncode != 0:
            log = self.directory / "log"
            raise RuntimeError(
                f"{Path(args[0]).name} failed: {result.stdout!r} {result.stderr!r}\n"
                + (log.read_text(errors="replace") if log.exists() else "")
            )

    def create(self) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"Port {self.port} is taken: is an earlier test cluster still up?")
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        initdb = str(self.bin_dir / "initdb")
        self._run(initdb, "-D", str(self.directory / "data"), "-U", "postgres", "-A", "trust")
        self.start()
        createdb = str(self.bin_dir / "createdb")
        self._run(createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "keyward")

    def start(self, attempts: int = 20) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        pg_ctl = str(self.bin_dir / "pg_ctl")
        data, log = str(self.directory / "data"), str(self.directory / "log")
        for attempt in range(attempts):
            try:
                self._run(pg_ctl, "-D", data, "-o", options, "-l", log, "-w", "start")
                return
            except RuntimeError as error:
                # A port in the ephemeral range (KEYWARD_FAULT_PG_PORT=55432) may be
                # held for a moment by a client socket elsewhere: wait, and retry.
                if "Address already in use" not in str(error):
                    raise
                if attempt == attempts - 1:
                    holders = subprocess.run(["ss", "-tanp"], capture_output=True, text=True)
                    held = [line for line in holders.stdout.splitlines() if f":{self.port}" in line]
                    raise RuntimeError(f"Port {self.port} stays in use: {held}") from error
                time.sleep(0.5)

    def stop(self, mode: str = "fast") -> None:
        pg_ctl = str(self.bin_dir / "pg_ctl")
        subprocess.run(
            self._as_postgres(pg_ctl, "-D", str(self.directory / "data"), "-m", mode, "stop"),
            capture_output=True,
            timeout=60,
        )

    def destroy(self) -> None:
        if (self.directory / "data" / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class ThrowawayRedis:
    """A redis-server with no persistence, on its own port, as a child process."""

    port: int = 16390
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"Port {self.port} is taken: is an earlier test Redis still up?")
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(lambda: not port_is_free(self.port), 10):
            raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def production_env(**overrides: str) -> dict[str, str]:
    """Return an environment for a production-like process (DEBUG off, strong secrets)."""
    test_only = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CACHE_URL", "DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in test_only}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        KEYWARD_PEPPER=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command in `env`; return its standard output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


@dataclass
class Gunicorn:
    """A gunicorn serving Keyward on a free loopback port, its output kept in a file."""

    env: dict[str, str]
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="kw_sec_gu_")[1]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "config.wsgi:application"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)]
        command += ["--timeout", "60", "--graceful-timeout", "5", "--log-level", "info"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_until(lambda: self._healthy(), 30, 0.2):
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.output()}")

    def _healthy(self) -> bool:
        try:
            return self.get("/healthz").status == 200
        except OSError:
            return False

    def worker_pids(self) -> set[int]:
        result = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        )
        return {int(pid) for pid in result.stdout.split()}

    def request(
        self, method: str, path: str, token: str | None = None, body: dict | None = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data, headers, method=method)  # noqa: S310
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return Answer(
                    response.status,
                    dict(response.headers),
                    response.read(),
                    time.monotonic() - started,
                )
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read(), time.monotonic() - started)

    def get(self, path: str, token: str | None = None) -> Answer:
        return self.request("GET", path, token)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log_path.unlink(missing_ok=True)
