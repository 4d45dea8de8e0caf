"""Helpers the benchmarks and the multi-process test share: databases, servers, ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PORTS = range(18700, 18800)


def database_url(name: str, admin_url: str = PG_ADMIN_URL) -> str:
    """Return the DATABASE_URL of a bench database on the local PostgreSQL."""
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgres://", 1)
    return f"{base}/{name}"


def recreate_database(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Drop (closing its sessions) and create the database `name`: bench databases only."""
    import psycopg

    if not name.startswith("kw_"):
        raise ValueError(f"refusing to recreate {name!r}: bench databases start with kw_")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    import psycopg

    if not name.startswith("kw_"):
        raise ValueError(f"refusing to drop {name!r}: bench databases start with kw_")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


def bench_env(
    database: str, redis_url: str, admin_url: str = PG_ADMIN_URL, **extra: str
) -> dict[str, str]:
    """Return the environment for a bench process against `database` and `redis_url`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "CACHE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": database_url(database, admin_url),
            "REDIS_URL": redis_url,
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run a manage.py command with `env`; return its standard output."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def free_port(exclude: set[int] | None = None) -> int:
    """Return a port in 18700-18799 that nothing listens on, on 127.0.0.1."""
    for port in PORTS:
        if exclude and port in exclude:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18700-18799")


class Server:
    """A gunicorn serving bench.settings on 127.0.0.1:`port`; always stop() it."""

    def __init__(self, env: dict[str, str], port: int, workers: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:bench.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--no-control-socket",  # one shared socket path would collide between servers
                "config.wsgi:application",
            ],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn on port {self.port} did not answer in {timeout:.0f} s")

    def stop(self) -> None:
        """Stop gunicorn gracefully (workers write their counters), then for good."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
