"""Real server processes: a rate limit shared through Redis, and the flush at shutdown.

Servers listen on 127.0.0.1, on ports the harness reserves, and are always
stopped, whatever the test's outcome. They need a database other processes can
open, so these tests run on PostgreSQL only.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.conf import settings
from django.db import connection

from apikeys.models import APIKey
from conftest import on_postgres
from harness import Gunicorn, Runserver, StartFailed, production_env

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if not on_postgres():
        pytest.skip("server processes need a database they can share: run on PostgreSQL")


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def servers():
    """Return a function starting a server process on the test database; all stop at the end."""
    started = []

    def start(kind: str, **env_overrides: str):
        # The test settings and their secrets: the servers must verify the keys this
        # process creates. No shared cache unless a test passes one.
        env = production_env(
            settings="config.settings_test",
            database_url=database_url(),
            SECRET_KEY=settings.SECRET_KEY,
            KEYWARD_PEPPER=settings.KEYWARD_PEPPER,
            DATABASE_POOL_MIN="1",
            **env_overrides,
        )
        server = Gunicorn(env) if kind == "gunicorn" else Runserver(env)
        try:
            server.start()
        except StartFailed as failure:
            pytest.fail(str(failure))
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


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
    assert [answer.status for answer in answers] == [200] * 5 + [429]
    remaining = [answer.headers["RateLimit-Remaining"] for answer in answers]
    assert remaining == ["4", "3", "2", "1", "0", "0"]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    one.stop()
    two.stop()
    assert APIKey.objects.get(pk=key.pk).usage_count == 6


@pytest.mark.parametrize("kind", ["gunicorn", "runserver"])
def test_a_graceful_shutdown_writes_the_usage_gathered_in_the_process(servers, org, make_key, kind):
    key, token = make_key(org)
    server = servers(kind, KEYWARD_USAGE_FLUSH_SECONDS="3600")
    assert [server.get("/api/v1/whoami", token).status for _ in range(7)] == [200] * 7
    time.sleep(0.5)
    assert APIKey.objects.get(pk=key.pk).usage_count == 0  # nothing written yet
    server.stop()  # checked: a clean exit status
    assert APIKey.objects.get(pk=key.pk).usage_count == 7, server.output()


@pytest.mark.parametrize("stop", ["killed before a send", "killed after sends", "graceful"])
def test_what_a_stopped_worker_loses_is_exactly_what_it_had_not_sent(
    servers, org, make_key, redis_url, redis_cache, stop
):
    """With Redis, a worker's counts are in its memory until its next send (docs/README-usage.md).

    SIGKILL loses exactly the requests answered since the last send; a graceful stop
    (SIGTERM) sends and writes everything.
    """
    from apikeys.usage import UsageCounter

    key, token = make_key(org)
    send = "0.2" if stop == "killed after sends" else "3600"
    server = servers(
        "gunicorn",
        REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=redis_cache.key_prefix,
        KEYWARD_USAGE_FLUSH_SECONDS="3600",
        KEYWARD_COUNTER_SEND_SECONDS=send,
    )
    assert [server.get("/api/v1/whoami", token).status for _ in range(7)] == [200] * 7
    time.sleep(1.0)  # five sends when they are on
    if stop == "graceful":
        server.stop()
    else:
        for worker in server.worker_pids():
            os.kill(worker, signal.SIGKILL)
    counter = UsageCounter()  # any process may write what reached Redis
    counter.cache = redis_cache
    counter.flush()
    expected = 0 if stop == "killed before a send" else 7
    assert APIKey.objects.get(pk=key.pk).usage_count == expected, server.output()
