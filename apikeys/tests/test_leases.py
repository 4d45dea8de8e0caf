"""Leases with acknowledged invalidation, against a real Redis (docs/architecture-invalidation.md).

Each "process" here is a LeaseHolder with its own thread and connections, as a
worker has; a frozen process is a holder whose thread is paused where it
stands, and the network is cut with a TCP proxy (apikeys/tests/proxy.py).
Leases are one second long so that the waits stay short.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid

import pytest
import redis as redis_lib
from django.core.cache.backends.redis import RedisCache

from apikeys.cache import VerifiedKeyCache
from apikeys.leases import Bus, LeaseHolder, Publisher, _adopt
from apikeys.tests.proxy import Proxy
from harness.base import wait_until
from harness.redis_server import ThrowawayRedis

LEASE = 1.0
SLACK = 0.5  # a loaded machine schedules threads late


class Process:
    """What a worker's cache sees of its holder: organisations dropped, times emptied."""

    def __init__(self, cache: RedisCache, lease: float = LEASE) -> None:
        self.invalidated: list[int] = []
        self.emptied = 0
        self.holder = LeaseHolder(self.invalidated.append, self.empty, backend=cache, lease=lease)

    def empty(self) -> None:
        self.emptied += 1

    def start(self) -> Process:
        self.holder.trusted()
        assert wait_until(self.holder.trusted, 5, 0.01), "the lease was never acquired"
        return self

    def stop(self) -> None:
        self.holder.stop()


@pytest.fixture
def cache(redis_url):
    """A Redis cache under a prefix of its own: its own registry and channel."""
    backend = RedisCache(redis_url, {"KEY_PREFIX": f"kwlease-{uuid.uuid4().hex[:10]}"})
    yield backend
    client = backend._cache.get_client(write=True)
    names = list(client.scan_iter(match=f"{backend.key_prefix}:*"))
    if names:
        client.delete(*names)


@pytest.fixture
def processes(cache):
    started: list[Process] = []

    def start(backend: RedisCache = cache, lease: float = LEASE) -> Process:
        process = Process(backend, lease).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def age_registry(cache: RedisCache) -> None:
    """Make the registry old: every holder of this test is in it, none was lost."""
    bus = Bus(cache)
    connection = bus.connect(2)
    try:
        _adopt(connection, [bus.registry], ["", 0])
    finally:
        connection.disconnect()


def publish(cache: RedisCache, organization_id: int, lease: float = LEASE) -> float:
    return Publisher(Bus(cache)).publish_and_wait(organization_id, lease=lease)


def test_a_change_returns_once_every_holder_has_dropped_the_organisation(cache, processes):
    one, two = processes(), processes()
    age_registry(cache)
    waited = publish(cache, 42)
    assert waited < LEASE / 2
    assert one.invalidated == [42] and two.invalidated == [42]
    assert one.holder.trusted() and two.holder.trusted()


def test_a_frozen_holder_is_waited_out_and_then_trusts_nothing_it_held(cache, processes):
    live, frozen = processes(), processes()
    age_registry(cache)
    frozen.holder.pause.set()
    assert frozen.holder.paused.wait(5)
    waited = publish(cache, 7)
    assert waited <= LEASE + SLACK  # its lease ran out: within the lease time
    assert live.invalidated == [7]
    assert not frozen.holder.trusted()  # it stopped trusting before Redis let the lease go
    emptied = frozen.emptied
    frozen.holder.pause.clear()
    assert wait_until(frozen.holder.trusted, 5, 0.01)
    assert frozen.emptied == emptied + 1  # a new lease starts from an empty cache
    assert frozen.invalidated == [7]  # and the message waiting for it is handled too


def test_a_holder_that_lost_the_message_is_fenced_and_starts_again(cache, processes):
    faithful, forgetful = processes(), processes()
    age_registry(cache)
    forgetful.holder.drop_next_message = True
    waited = publish(cache, 9)
    assert LEASE / 2 - 0.05 <= waited <= LEASE / 2 + LEASE + SLACK
    assert faithful.invalidated == [9] and forgetful.invalidated == []
    assert wait_until(lambda: forgetful.holder.acquisitions == 2, 5, 0.01)
    assert forgetful.emptied == 2  # fenced: its renewal failed, so it emptied its cache


def test_a_lost_registry_makes_a_change_wait_one_lease(cache, processes):
    process = processes()
    age_registry(cache)
    cache._cache.get_client(write=True).delete(Bus(cache).registry)  # an eviction, a FLUSHDB
    waited = publish(cache, 3)
    assert LEASE - 0.1 <= waited <= LEASE + SLACK
    assert wait_until(lambda: process.holder.acquisitions == 2, 5, 0.01)


def test_unknown_organisations_and_garbage_are_ignored(cache):
    keys = VerifiedKeyCache()
    keys.lease = LeaseHolder(keys.drop_organization, keys.clear, backend=cache, lease=LEASE)
    try:
        assert wait_until(keys.lease.trusted, 5, 0.01)
        for key_id, organization_id in (("a", 1), ("b", 2)):
            assert keys.put(key_id, organization_id, keys.ticket(), object())
        age_registry(cache)
        client = cache._cache.get_client(write=True)
        channel = Bus(cache).channel
        for garbage in (b"garbage", b"inv x y", b"inv -5 abc", b"inv 1 a b", b"\xff\xfe", b""):
            client.publish(channel, garbage)
        assert publish(cache, 987654) < LEASE / 2
        assert keys.get("a") is not None and keys.get("b") is not None
        assert keys.lease.trusted() and keys.lease.acquisitions == 1
    finally:
        keys.lease.stop()


def test_a_flood_of_invalidations_keeps_holders_trusting_and_changes_prompt(cache, processes):
    process = processes()
    age_registry(cache)
    client = cache._cache.get_client(write=True)
    channel = Bus(cache).channel
    stop = threading.Event()
    sent = []

    def flood() -> None:  # 1,000 changes a second, to organisations this process never saw
        started = time.monotonic()
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for n in range(10):
                pipe.publish(channel, f"inv {100000 + len(sent) + n} {uuid.uuid4().hex}")
            pipe.execute()
            sent.extend(range(10))
            time.sleep(max(0.0, started + len(sent) / 1000 - time.monotonic()))

    flooder = threading.Thread(target=flood)
    flooder.start()
    distrusted = 0
    try:
        deadline = time.monotonic() + 2
        waits = []
        while time.monotonic() < deadline:
            distrusted += not process.holder.trusted()
            waits.append(publish(cache, 5))
            time.sleep(0.05)
    finally:
        stop.set()
        flooder.join()
    assert len(sent) >= 1500
    assert distrusted == 0
    assert max(waits) < LEASE / 2
    assert 5 in process.invalidated
    assert wait_until(lambda: len(process.invalidated) >= len(sent), 5, 0.05)


def test_a_holder_cut_off_stops_trusting_within_its_lease(cache, processes, redis_url):
    target = redis_lib.Redis.from_url(redis_url).connection_pool.connection_kwargs
    proxy = Proxy(target.get("host", "127.0.0.1"), target.get("port", 6379))
    try:
        behind = RedisCache(proxy.url(target.get("db", 0)), {"KEY_PREFIX": cache.key_prefix})
        process = processes(behind)
        age_registry(cache)
        proxy.blackhole()  # silence, not an error: only the clock can tell
        cut_at = time.monotonic()
        assert wait_until(lambda: not process.holder.trusted(), LEASE + SLACK, 0.01)
        assert time.monotonic() - cut_at <= LEASE + SLACK
        assert publish(cache, 11) <= LEASE + SLACK  # a change waits it out, within the lease
        proxy.heal()
        assert wait_until(process.holder.trusted, 10, 0.05)
        assert process.emptied >= 2 and process.invalidated in ([], [11])

        proxy.cut()  # the connection is closed: it stops trusting at once
        assert wait_until(lambda: not process.holder.trusted(), SLACK, 0.01)
        proxy.heal()
        assert wait_until(process.holder.trusted, 10, 0.05)
    finally:
        proxy.close()


@pytest.fixture
def throwaway_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found")
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_restarting_empty_costs_trust_not_correctness(throwaway_redis, processes):
    cache = RedisCache(throwaway_redis.url, {"KEY_PREFIX": "kwlease"})
    process = processes(cache)
    age_registry(cache)
    throwaway_redis.kill()
    assert wait_until(lambda: not process.holder.trusted(), SLACK, 0.01)
    throwaway_redis.start()
    assert wait_until(process.holder.trusted, 10, 0.05)
    assert process.holder.acquisitions == 2 and process.emptied == 2
    # The registry is new: a holder of the old one might still trust its cache for a lease.
    waited = publish(cache, 13)
    assert waited >= LEASE / 2
    assert 13 in process.invalidated
