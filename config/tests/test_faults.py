"""Faults under a running gunicorn: PostgreSQL stops and comes back; Redis dies.

Each test runs its own PostgreSQL cluster and Redis (harness/, on ports reserved for
them), never the shared ones, and tears every process down, checked, whatever happens.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from harness import (
    Gunicorn,
    ThrowawayPostgres,
    ThrowawayRedis,
    manage,
    postgres_bin,
    production_env,
    redis_server,
    wait_until,
)

pytestmark = pytest.mark.server


def require(found: bool, what: str) -> None:
    if found:
        return
    if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
        pytest.fail(f"{what} is required here and was not found.")
    pytest.skip(f"{what} not found")


@pytest.fixture(scope="module")
def postgres():
    require(postgres_bin() is not None, "PostgreSQL's initdb")
    with ThrowawayPostgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def seeded(postgres):
    """Migrate the throwaway database and issue two keys; return (env, admin token, other)."""
    # No background usage flush (as these tests always ran, inheriting the suite's setting):
    # while PostgreSQL is down it would log a traceback every 2 s, which the logs are
    # checked for; usage written at shutdown still goes through gunicorn.conf.py.
    env = production_env(
        database_url=postgres.url, DATABASE_POOL_TIMEOUT="2", KEYWARD_USAGE_FLUSH_SECONDS="0"
    )
    manage(env, "migrate", "--no-input")
    manage(env, "createorg", "faults", "--name", "Faults", "--owner", "ops@example.com")
    admin = manage(
        env, "createapikey", "--org", "faults", "--name", "ops", "--scopes", "keys:read,keys:write"
    )
    other = manage(
        env, "createapikey", "--org", "faults", "--name", "victim", "--scopes", "keys:read"
    )
    return env, admin, other


@pytest.fixture
def redis():
    require(redis_server() is not None, "redis-server")
    with ThrowawayRedis() as server:
        yield server


def serve(env, workers=1) -> Gunicorn:
    return Gunicorn(env, workers=workers).start()


def assert_unavailable(answer) -> None:
    assert answer.status == 503, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Retry-After"].isdigit()
    error = answer.json()["error"]
    assert error["code"] == "unavailable"
    assert error["request_id"] == answer.headers["X-Request-Id"]
    assert b"<html" not in answer.body.lower() and b"Traceback" not in answer.body


def assert_no_token_written(server: Gunicorn, *issued: str) -> None:
    written = server.output()
    assert "Booting worker" in written  # we are reading the right file
    for token in issued:
        assert token not in written
        assert token.split("_", 3)[3] not in written


def test_postgres_down_is_503_and_the_same_process_recovers(postgres, seeded):
    env, admin, _ = seeded
    server = serve(env)
    try:
        assert server.get("/api/v1/keys", admin).status == 200
        assert server.get("/readyz").status == 200
        workers = server.worker_pids()

        postgres.stop("fast")
        answers = {
            "list": server.get("/api/v1/keys", admin),
            "create": server.request("POST", "/api/v1/keys", admin, {"name": "while down"}),
            "unknown key": server.get("/api/v1/keys", admin[:-12] + "AAAAAA" + admin[-6:]),
        }
        for name, answer in answers.items():
            if name == "unknown key" and answer.status == 401:
                continue  # a bad checksum is refused before the database is asked
            assert_unavailable(answer)
            assert answer.seconds < 15, name
        ready = server.get("/readyz")
        assert_unavailable(ready)
        assert server.get("/healthz").status == 200  # the process is alive, only not ready

        postgres.start()
        recovered = wait_until(lambda: server.get("/api/v1/keys", admin).status == 200, 30, 0.5)
        assert recovered, server.output()
        assert server.get("/readyz").status == 200
        created = server.request("POST", "/api/v1/keys", admin, {"name": "after recovery"})
        assert created.status == 201
        assert server.worker_pids() == workers  # served again by the very same worker
        assert server.running()
        assert_no_token_written(server, admin, created.json()["token"])
        assert "Traceback" not in server.output()
    finally:
        server.stop()
        if not postgres.running():
            postgres.start()  # leave the module's cluster up for the next test


def test_redis_down_authentication_revocation_and_audit_keep_working(postgres, seeded, redis):
    env, admin, _ = seeded
    victim = manage(
        env, "createapikey", "--org", "faults", "--name", "victim2", "--scopes", "keys:read"
    )
    victim_id = victim.split("_")[2]
    server = serve({**env, "REDIS_URL": redis.url}, workers=2)
    try:
        for _ in range(6):  # warm both workers' verified-key caches through Redis
            assert server.get("/api/v1/whoami", admin).status == 200
            assert server.get("/api/v1/whoami", victim).status == 200

        redis.kill()
        whoami = server.get("/api/v1/whoami", admin)
        assert whoami.status == 200, whoami.body
        assert whoami.seconds < 5
        revoked = server.request("POST", f"/api/v1/keys/{victim_id}/revoke", admin)
        assert revoked.status == 200, revoked.body
        assert revoked.json()["status"] == "revoked"
        after = [server.get("/api/v1/whoami", victim) for _ in range(10)]
        assert [a.status for a in after] == [401] * 10
        assert {a.json()["error"]["code"] for a in after} == {"invalid_key"}
        created = server.request("POST", "/api/v1/keys", admin, {"name": "made without redis"})
        assert created.status == 201, created.body
        assert server.get("/api/v1/whoami", created.json()["token"]).status == 200

        with psycopg.connect(env["DATABASE_URL"]) as connection:
            actions = connection.execute(
                "SELECT action, target_id FROM audit_auditevent ORDER BY seq"
            ).fetchall()
        assert ("api_key.revoked", victim_id) in actions
        assert ("api_key.created", created.json()["key"]["id"]) in actions

        redis.start()  # back, empty: nothing stale can be trusted
        assert server.get("/api/v1/whoami", admin).status == 200
        assert server.get("/api/v1/whoami", victim).status == 401
        assert_no_token_written(server, admin, victim, created.json()["token"])
        assert "Traceback" not in server.output()
    finally:
        server.stop()
