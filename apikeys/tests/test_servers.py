"""Real server processes: a rate limit shared through Redis, and the flush at shutdown.

Servers listen on 127.0.0.1 ports 18500-18599 and are always stopped, whatever
the test's outcome. They need a database other processes can open, so these
tests run on PostgreSQL only.
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

import pytest
from django.conf import settings
from django.db import connection

from apikeys.models import APIKey
from conftest import on_postgres

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(settings.BASE_DIR)
PORTS = range(18500, 18600)


@pytest.fixture(autouse=True)
def _postgres_only():
    if not on_postgres():
        pytest.skip("server processes need a database they can share: run on PostgreSQL")


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18500-18599")


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Server:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def get(self, path: str, token: str) -> tuple[int, dict, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.load(error)

    def stop(self) -> int:
        """Stop gracefully (SIGTERM) and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def servers(tmp_path):
    """Return a function starting a server process; every one is killed at the end."""
    started: list[Server] = []

    def start(kind: str, **env_overrides: str) -> Server:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CACHE_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings_test",
            DATABASE_URL=database_url(),
            DATABASE_POOL_MIN="1",
            PYTHONUNBUFFERED="1",
            **env_overrides,
        )
        if kind == "gunicorn":
            command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
            command += [
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--graceful-timeout",
                "20",
                "--no-control-socket",
            ]
        else:
            command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        log = tmp_path / f"{kind}-{port}.log"
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
        started.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"{kind} exited at start:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return server
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"{kind} did not answer on port {port}:\n{log.read_text()}")

    yield start
    for server in started:
        if server.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)


def away_from_a_minute_boundary() -> None:
    """Wait for a new minute when this one is nearly over: the test needs one window."""
    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.5)


def test_a_5_per_minute_key_is_refused_its_sixth_request_across_two_processes(
    servers, org, make_key, redis_url, redis_cache
):
    key, token = make_key(org, rate_limit="5/min")
    # Both servers use the test Redis under redis_cache's prefix, which it cleans up.
    shared = {"REDIS_URL": redis_url, "CACHE_KEY_PREFIX": redis_cache.key_prefix}
    one = servers("gunicorn", KEYWARD_USAGE_FLUSH_SECONDS="1", **shared)
    two = servers("gunicorn", KEYWARD_USAGE_FLUSH_SECONDS="1", **shared)
    away_from_a_minute_boundary()
    answers = [(one if i % 2 == 0 else two).get("/api/v1/whoami", token) for i in range(6)]
    assert [status for status, _, _ in answers] == [200] * 5 + [429]
    assert [h["RateLimit-Remaining"] for _, h, _ in answers] == ["4", "3", "2", "1", "0", "0"]
    status, headers, body = answers[-1]
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= 60
    one.stop()
    two.stop()
    assert APIKey.objects.get(pk=key.pk).usage_count == 6


@pytest.mark.parametrize("kind", ["gunicorn", "runserver"])
def test_a_graceful_shutdown_writes_the_usage_gathered_in_the_process(servers, org, make_key, kind):
    key, token = make_key(org)
    server = servers(kind, KEYWARD_USAGE_FLUSH_SECONDS="3600")
    assert [server.get("/api/v1/whoami", token)[0] for _ in range(7)] == [200] * 7
    time.sleep(0.5)
    assert APIKey.objects.get(pk=key.pk).usage_count == 0  # nothing written yet
    server.stop()
    assert APIKey.objects.get(pk=key.pk).usage_count == 7, server.log.read_text()
