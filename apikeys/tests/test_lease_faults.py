"""Leases under faults, with real gunicorn workers (docs/architecture-invalidation.md).

A worker frozen with SIGSTOP, Redis losing its data or restarting, a holder
that never acknowledges (a publication lost on the way), a flood of
invalidations: each time a change returns within the times the protocol
promises, and every worker refuses the changed key on its next request.
Needs PostgreSQL (database kw_leases, or <name>_leases beside a kw_ test
database) and Redis (database 13 of the server REDIS_TEST_URL names, flushed
here); leases are one second long.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from apikeys.leases import RENEW_LUA, Bus, Script, _acquire
from harness import Gunicorn, bench_env, manage
from harness.base import wait_until
from harness.postgres import drop_database, recreate_database
from harness.redis_server import ThrowawayRedis

pytestmark = pytest.mark.server

# Beside the test database's own name when it is a kw_ one, so that runs side by side
# on one PostgreSQL (each with its own DATABASE_URL) do not drop each other's.
_BASE = os.environ.get("DATABASE_URL", "").rsplit("/", 1)[-1].split("?")[0]
DATABASE = f"{_BASE}_leases" if _BASE.startswith("kw_") else "kw_leases"
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/2").rsplit("/", 1)[0] + "/13"
LEASE = 1.0
WORKERS = 4
SLACK = 1.0  # a loaded machine schedules processes late


def _admin_url() -> str:
    s = connection.settings_dict
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    return (
        f"postgresql://{quote(s.get('USER') or 'postgres', safe='')}{password}"
        f"@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/postgres"
    )


def _require_services(redis_url: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("workers share a database only on PostgreSQL")
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail(f"Redis at {redis_url} is required here and unreachable: {exc}")
        pytest.skip(f"Redis at {redis_url} is unreachable: {exc}")


class Site:
    """A gunicorn with `WORKERS` workers on the lease database, and its manager's token."""

    def __init__(self, redis_url: str, workers: int = WORKERS) -> None:
        self.redis_url = redis_url
        self.env = bench_env(
            DATABASE,
            redis_url,
            server_url=_admin_url(),
            KEYWARD_LEASE_SECONDS=str(LEASE),
            BENCH_PEERS="0",
        )
        self.workers = workers
        self.server: Gunicorn | None = None

    def start(self) -> None:
        self.server = Gunicorn(
            self.env, workers=self.workers, extra_args=["--log-level", "warning"]
        )
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()  # workers may have been frozen or killed: no clean exit owed

    def pids(self) -> list[int]:
        return sorted(self.server.worker_pids())

    def request(self, method: str, path: str, token: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            conn.request(method, path, body=json.dumps(body or {}), headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read() or b"{}")
            return (
                response.status,
                response.getheader("X-Keyward-Worker"),
                int(response.getheader("X-Bench-Queries") or -1),
                payload,
            )
        finally:
            conn.close()

    def new_key(self, manager: str) -> tuple[str, str]:
        status, _, _, body = self.request("POST", "/api/v1/keys", manager, {"name": "victim"})
        assert status == 201, body
        return body["key"]["id"], body["token"]

    def revoke(self, manager: str, key_id: str) -> float:
        started = time.monotonic()
        status, _, _, body = self.request("POST", f"/api/v1/keys/{key_id}/revoke", manager)
        assert status == 200, body
        return time.monotonic() - started

    def ask(self, token: str, done, parallel: int = 8, deadline: float = 60):
        """Ask on new connections until done(answers by worker); return the answers."""
        answers: dict[str, list[tuple[int, int, dict]]] = defaultdict(list)
        give_up = time.monotonic() + deadline
        with ThreadPoolExecutor(parallel) as pool:
            while not done(answers):
                assert time.monotonic() < give_up, f"workers reached: {sorted(answers)}"
                replies = pool.map(lambda _: self.request("GET", "/bench/keyward", token), range(8))
                for status, pid, queries, body in replies:
                    answers[pid].append((status, queries, body))
        return answers

    def warm(self, token: str) -> None:
        """Make every worker answer `token` from its cache (a 200 without a query)."""

        def cached_everywhere(answers) -> bool:
            cached = [p for p, rows in answers.items() if any(q == 0 for s, q, _ in rows)]
            return len(cached) == self.workers

        answers = self.ask(token, cached_everywhere)
        assert {s for rows in answers.values() for s, _, _ in rows} == {200}

    def refused_everywhere(self, token: str) -> None:
        """Ask every worker at least three times: every answer refuses the key."""

        def thrice(answers) -> bool:
            return len(answers) == self.workers and all(len(r) >= 3 for r in answers.values())

        answers = self.ask(token, thrice)
        codes = {
            (s, b.get("error", {}).get("code")) for rows in answers.values() for s, _, b in rows
        }
        assert (401, "invalid_key") in codes
        # Past 20 invalid keys a minute from one address the refusal is a 429.
        assert codes <= {(401, "invalid_key"), (429, "rate_limited")}, codes


def _flush(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture(scope="module")
def seeded():
    _require_services(REDIS_URL)
    admin_url = _admin_url()
    recreate_database(DATABASE, admin_url)
    _flush(REDIS_URL)
    env = bench_env(DATABASE, REDIS_URL, server_url=admin_url, BENCH_PEERS="0")
    manage(env, "migrate", "--no-input")
    seed = json.loads(manage(env, "benchseed"))
    yield seed
    drop_database(DATABASE, admin_url)


@pytest.fixture
def site(seeded):
    _flush(REDIS_URL)  # database 13 is this module's own: no bad-key tallies, no leases
    served = Site(REDIS_URL)
    served.start()
    yield served
    served.stop()


def _manager(seeded) -> str:
    return seeded["manager"]["token"]


@pytest.mark.django_db
def test_a_revoke_while_a_worker_is_frozen_returns_within_the_lease(site, seeded):
    manager = _manager(seeded)
    key_id, token = site.new_key(manager)
    site.warm(token)
    assert site.revoke(manager, site.new_key(manager)[0]) < LEASE  # all answer: no lease waited

    frozen = site.pids()[0]
    os.kill(frozen, signal.SIGSTOP)
    try:
        waited = site.revoke(manager, key_id)
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert waited <= LEASE + SLACK  # waited out the frozen worker's lease, no longer
    site.refused_everywhere(token)  # the frozen worker too, once it wakes


@pytest.mark.django_db
def test_redis_losing_its_data_does_not_revive_a_revoked_key(site, seeded):
    manager = _manager(seeded)
    key_id, token = site.new_key(manager)
    site.warm(token)
    _flush(REDIS_URL)  # an eviction or a FLUSHDB: the leases are gone with the rest
    waited = site.revoke(manager, key_id)
    assert waited <= LEASE + SLACK  # a registry younger than a lease is waited out
    site.refused_everywhere(token)


@pytest.mark.django_db
def test_a_holder_that_never_acknowledges_is_fenced(site, seeded):
    """A publication lost on the way: a live lease whose holder never answers."""
    manager = _manager(seeded)
    key_id, token = site.new_key(manager)
    site.warm(token)
    backend = RedisCache(REDIS_URL, {"KEY_PREFIX": "kw"})
    bus = Bus(backend)
    deaf = f"h:{uuid.uuid4().hex}"
    renewed: list[int] = []
    stop = threading.Event()
    renew = Script(RENEW_LUA)

    def keep_renewing() -> None:
        conn = bus.connect(2)
        _acquire(conn, [bus.registry], [deaf, int(LEASE * 1000), ""])
        while not stop.wait(LEASE / 4):
            renewed.append(int(renew(conn, [bus.registry], [deaf, int(LEASE * 1000)])[2]))
        conn.disconnect()

    renewer = threading.Thread(target=keep_renewing)
    renewer.start()
    try:
        assert wait_until(lambda: len(renewed) >= 2, 5, 0.05)
        waited = site.revoke(manager, key_id)
        assert LEASE / 2 - 0.1 <= waited <= LEASE / 2 + LEASE + SLACK
        assert wait_until(lambda: renewed[-1] == 0, 5, 0.05)  # fenced: it cannot renew
    finally:
        stop.set()
        renewer.join()
    site.refused_everywhere(token)


@pytest.mark.django_db
def test_a_flood_of_invalidations_keeps_workers_answering(site, seeded):
    manager = _manager(seeded)
    _, token = site.new_key(manager)
    victim_id, victim = site.new_key(manager)
    site.warm(token)
    site.warm(victim)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    channel = Bus(RedisCache(REDIS_URL, {"KEY_PREFIX": "kw"})).channel
    stop = threading.Event()
    sent = [0]

    def flood() -> None:  # 1,000 changes a second to organisations nobody has seen
        started = time.monotonic()
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for n in range(20):
                pipe.publish(channel, f"inv {10_000_000 + sent[0] + n} {uuid.uuid4().hex}")
            pipe.execute()
            sent[0] += 20
            time.sleep(max(0.0, started + sent[0] / 1000 - time.monotonic()))

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        time.sleep(0.5)
        answers = []
        until = time.monotonic() + 3
        with ThreadPoolExecutor(8) as pool:
            while time.monotonic() < until:
                answers += pool.map(
                    lambda _: site.request("GET", "/bench/keyward", token), range(8)
                )
        waited = site.revoke(manager, victim_id)
    finally:
        stop.set()
        flooder.join()
    assert sent[0] >= 3000
    assert {status for status, _, _, _ in answers} == {200}
    from_cache = sum(1 for _, _, queries, _ in answers if queries == 0)
    assert from_cache >= 0.9 * len(answers)  # still answered from the cache, not the database
    assert waited < LEASE  # every worker acknowledged through the flood
    site.refused_everywhere(victim)


@pytest.fixture
def throwaway_redis():
    if shutil.which("redis-server") is None:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail("redis-server is required here and was not found")
        pytest.skip("redis-server not found")
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.django_db
def test_redis_restarting_keeps_revocation_and_the_workers_answering(seeded, throwaway_redis):
    manager = _manager(seeded)
    site = Site(throwaway_redis.url, workers=2)
    site.start()
    try:
        key_id, token = site.new_key(manager)
        other_id, other = site.new_key(manager)
        site.warm(token)
        site.warm(other)
        throwaway_redis.kill()
        status, _, _, _ = site.request("GET", "/bench/keyward", token)
        assert status == 200  # from the database now
        site.revoke(manager, key_id)  # gives up on Redis after a lease, logs, answers
        site.refused_everywhere(token)
        throwaway_redis.start()  # back, empty
        assert wait_until(lambda: site.request("GET", "/bench/keyward", other)[2] == 0, 20, 0.2)
        site.warm(other)
        assert site.revoke(manager, other_id) <= LEASE + SLACK
        site.refused_everywhere(other)
    finally:
        site.stop()


@pytest.mark.django_db
def test_a_worker_cut_off_from_redis_falls_back_to_the_database_within_the_lease(site, seeded):
    """Silence, not an error: only its lease's clock tells the worker to stop trusting."""
    import redis

    from apikeys.tests.proxy import Proxy

    manager = _manager(seeded)
    target = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    proxy = Proxy(target.get("host", "127.0.0.1"), target.get("port", 6379))
    cut = Site(proxy.url(target.get("db", 0)), workers=1)
    cut.start()
    try:
        key_id, token = site.new_key(manager)
        cut.warm(token)
        proxy.blackhole()
        blackholed = time.monotonic()
        answers = []
        while time.monotonic() - blackholed < LEASE + SLACK:
            started = time.monotonic()
            status, _, queries, _ = cut.request("GET", "/bench/keyward", token)
            answers.append((status, queries, time.monotonic() - started))
            if queries > 0:
                break
        assert {status for status, _, _ in answers} == {200}  # never a 500, never a hang
        assert max(took for _, _, took in answers) < 1.0
        assert answers[-1][1] > 0  # the database answers now: it stopped trusting its cache
        assert site.revoke(manager, key_id) <= LEASE + SLACK  # waits out its lease, no more
        cut.refused_everywhere(token)
        proxy.heal()
        _, fresh = site.new_key(manager)
        cut.warm(fresh)  # a new lease: its cache is trusted again
    finally:
        cut.stop()
        proxy.close()
