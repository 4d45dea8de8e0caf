"""Revocation, a scope change and a demotion hold on the very next request in every process.

Four gunicorn workers each cache the key (each has answered it without a
single query); the change is made; then new connections are opened until
every worker has answered several times, and every answer must refuse.
Each of those requests starts after the change's response has arrived.
Needs PostgreSQL (database kw_mp, created here) and Redis (database 12; both
can be moved, docs/harness.md): the per-process caches only agree through a
shared cache.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from django.db import connection

from harness import Gunicorn, bench_env, database_name, manage, redis_url
from harness.postgres import drop_database, recreate_database

pytestmark = pytest.mark.server

DATABASE = database_name("mp")
REDIS_URL = redis_url("multiprocess")
WORKERS = 4
PARALLEL = 8
DEADLINE = 60.0


def _admin_url() -> str:
    s = connection.settings_dict
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    return (
        f"postgresql://{quote(s.get('USER') or 'postgres', safe='')}{password}"
        f"@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/postgres"
    )


def _require_services() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "several processes agree only through the shared cache: run with PostgreSQL "
            "and Redis (on SQLite with the local-memory cache there is one process)"
        )
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail(f"Redis at {REDIS_URL} is required here and unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")


@pytest.fixture(scope="module")
def served():
    """Serve bench.settings with four workers on a fresh kw_mp; yield (server, seed, env)."""
    _require_services()
    import redis

    admin_url = _admin_url()
    recreate_database(DATABASE, admin_url)
    redis.Redis.from_url(REDIS_URL).flushdb()  # database 12 is this test's own
    # Each request names a client address of its own (below): refusals of the revoked
    # key must not add up to the invalid-key guard's 20 a minute for one address,
    # which a busy machine reaches before every worker has answered three times.
    env = bench_env(DATABASE, REDIS_URL, server_url=admin_url, KEYWARD_TRUSTED_PROXIES="127.0.0.1")
    manage(env, "migrate", "--no-input")
    seed = json.loads(manage(env, "benchseed"))
    server = Gunicorn(env, workers=WORKERS)
    try:
        server.start()
        yield server, seed, env
    finally:
        server.stop()
        drop_database(DATABASE, admin_url)


_clients = itertools.count(1)


def _client_address() -> str:
    """Return an address of the benchmarking range 198.18.0.0/15 not used before."""
    n = next(_clients)
    return f"198.{18 + (n >> 16) % 2}.{(n >> 8) % 256}.{n % 256}"


def _get(port: int, path: str, token: str) -> tuple[str, int, int, dict]:
    """GET over a new connection; return (worker pid, status, queries, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": _client_address()}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = json.loads(response.read() or b"{}")
        return (
            response.getheader("X-Keyward-Worker"),
            response.status,
            int(response.getheader("X-Bench-Queries")),
            body,
        )
    finally:
        conn.close()


def _send(port: int, path: str, token: str, done) -> dict[str, list[tuple[int, int, dict]]]:
    """Send requests on new connections, 8 at a time, until done(answers by worker)."""
    answers: dict[str, list[tuple[int, int, dict]]] = defaultdict(list)
    deadline = time.monotonic() + DEADLINE
    with ThreadPoolExecutor(PARALLEL) as pool:
        while not done(answers):
            assert time.monotonic() < deadline, f"workers reached: {sorted(answers)}"
            for pid, status, queries, body in pool.map(
                lambda _: _get(port, path, token), range(PARALLEL)
            ):
                answers[pid].append((status, queries, body))
    return answers


def _warm(server: Gunicorn, path: str, token: str) -> None:
    """Make every worker answer `token` from its cache: a 200 that cost no query."""

    def every_worker_cached(answers) -> bool:
        cached = [pid for pid, rows in answers.items() if any(q == 0 for s, q, _ in rows)]
        return len(cached) == WORKERS

    answers = _send(server.port, path, token, every_worker_cached)
    statuses = {s for rows in answers.values() for s, _, _ in rows}
    assert statuses == {200}, statuses


def _everywhere(server: Gunicorn, path: str, token: str) -> dict[str, list[tuple[int, int, dict]]]:
    """Ask every worker at least three times; return all answers by worker."""

    def each_worker_thrice(answers) -> bool:
        return len(answers) == WORKERS and all(len(rows) >= 3 for rows in answers.values())

    return _send(server.port, path, token, each_worker_thrice)


def _codes(answers) -> set[tuple[int, str]]:
    return {
        (s, body.get("error", {}).get("code")) for rows in answers.values() for s, _, body in rows
    }


def _call(server: Gunicorn, method: str, path: str, token: str, body: dict) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.django_db
def test_a_revoked_key_is_refused_by_every_worker(served):
    server, seed, _ = served
    key, manager = seed["unlimited"], seed["manager"]["token"]
    _warm(server, "/bench/keyward", key["token"])
    assert _call(server, "POST", f"/api/v1/keys/{key['id']}/revoke", manager, {}) == 200
    answers = _everywhere(server, "/bench/keyward", key["token"])
    # Past 20 invalid keys a minute from one address, the refusal is a 429 (the
    # address waits); it is decided only after the key itself was refused.
    assert (401, "invalid_key") in _codes(answers)
    assert _codes(answers) <= {(401, "invalid_key"), (429, "rate_limited")}


@pytest.mark.django_db
def test_a_key_reported_as_leaked_is_refused_by_every_worker(served):
    """Anyone's report (docs/leaks.md) revokes a real key for every process at once."""
    server, seed, _ = served
    key = seed["limited"]
    _warm(server, "/bench/keyward", key["token"])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        body = json.dumps({"credentials": ["not a key", key["token"]]})
        conn.request(
            "POST", "/api/v1/credentials/revoke", body, {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        assert (response.status, response.read()) == (202, b'{"status":"accepted"}')
    finally:
        conn.close()
    answers = _everywhere(server, "/bench/keyward", key["token"])
    assert (401, "invalid_key") in _codes(answers)
    assert _codes(answers) <= {(401, "invalid_key"), (429, "rate_limited")}


@pytest.mark.django_db
def test_a_removed_scope_is_missing_in_every_worker(served):
    server, seed, _ = served
    key, manager = seed["target"], seed["manager"]["token"]
    _warm(server, "/bench/scope/keys:write", key["token"])
    body = {"scopes": ["keys:read"]}
    assert _call(server, "PATCH", f"/api/v1/keys/{key['id']}", manager, body) == 200
    answers = _everywhere(server, "/bench/scope/keys:write", key["token"])
    assert _codes(answers) == {(403, "missing_scope")}


@pytest.mark.django_db
def test_a_demoted_members_personal_key_narrows_in_every_worker(served):
    """An admin's personal key holds keys:write and audit:read; a viewer's holds neither."""
    server, seed, env = served
    key = seed["personal"]
    for scope in ("keys:write", "audit:read"):
        _warm(server, f"/bench/scope/{scope}", key["token"])
    manage(env, "benchrole", "bench", seed["admin_email"], "viewer")
    for scope in ("keys:write", "audit:read"):
        answers = _everywhere(server, f"/bench/scope/{scope}", key["token"])
        assert _codes(answers) == {(403, "missing_scope")}
    # What the viewer's ceiling keeps still works: the key itself is valid.
    answers = _everywhere(server, "/bench/scope/keys:read", key["token"])
    assert _codes(answers) == {(200, None)}
