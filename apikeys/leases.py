"""Leases with acknowledged invalidation: when a process may trust its verified-key cache.

docs/architecture-invalidation.md holds the protocol and the argument that no
request starting after a change's response is let through on stale state; in
short:

- Each process that serves requests holds a **lease** in Redis (a member of one
  sorted set, scored by its expiry in Redis's clock), renewed every quarter of
  `KEYWARD_LEASE_SECONDS` by a background thread, and is **subscribed** to the
  invalidation channel on a connection of its own. It trusts its verified-key
  cache only while the lease it last renewed is fresh by its own clock, with a
  margin, so that it stops trusting before Redis lets the lease run out.
- A change that alters what authentication decides **publishes** the
  organisation's id and waits until every process whose lease was live when
  it published has **acknowledged**, having dropped that organisation's
  entries, or its lease ran out (a holder that renews without acknowledging is
  fenced: its lease is removed, and its last expiry waited out).
- A lease is renewed only after a PING sent on the subscription has come back,
  so a process whose subscription is broken stops renewing; one whose lease
  ran out (frozen, cut off) empties its cache before it trusts it again.
- A registry that Redis lost (a restart, FLUSHDB, an eviction) is re-created
  with its time of birth; for one lease time after that, a change also waits
  out the leases that might have lived in the lost one.

With the local-memory cache there is one process: it always trusts its cache,
and an invalidation is a call in that process. With another shared cache than
Redis (no publish/subscribe), no process trusts its cache: every request reads
the database.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from apikeys.counters import Script, current_pid, redis_connection

logger = logging.getLogger("keyward.leases")

# A process trusts its lease for this share of the lease time after it sent the renewal:
# the rest covers clocks that run at different rates and a renewal Redis applied late.
TRUST_SHARE = 0.9
RENEWALS_PER_LEASE = 4
HOLDER_PREFIX = "h:"
REGISTRY_PREFIX = "registry:"

# Every script reads Redis's own clock, and the registry's time of birth; a registry
# from an earlier run of the server (a restart kept an old snapshot) counts as new.
_REGISTRY_LUA = """
local function registry(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  local created = nil
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, '+inf', '+inf')) do
    local r, c = string.match(member, '^registry:(%w+):(%d+)$')
    if r == run and c then created = tonumber(c) else redis.call('ZREM', key, member) end
  end
  if created == nil then
    created = now
    redis.call('ZADD', key, '+inf', 'registry:' .. run .. ':' .. now)
  end
  return now, created
end
"""

# KEYS[1] registry; ARGV holder, lease ms, the holder's previous lease or ''. Returns
# {now, created}. The previous lease is no longer trusted (its session ended): removing it
# spares a change from waiting for it to run out.
ACQUIRE_LUA = (
    _REGISTRY_LUA
    + """
local now, created = registry(KEYS[1])
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[1], ARGV[3]) end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {now, created}
"""
)

# KEYS[1] registry; ARGV holder, lease ms. Returns {now, created, renewed 1/0}.
RENEW_LUA = (
    _REGISTRY_LUA
    + """
local now, created = registry(KEYS[1])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {now, created, 0}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {now, created, 1}
"""
)

# KEYS[1] registry; ARGV channel, message. Returns {now, created, holder, expiry, …}: the
# leases live when the message went out. Fenced leases ("f:…") are waited out like others.
PUBLISH_LUA = (
    _REGISTRY_LUA
    + """
local now, created = registry(KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PUBLISH', ARGV[1], ARGV[2])
local out = {now, created}
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '(+inf', 'WITHSCORES')) do
  out[#out + 1] = v
end
return out
"""
)

# KEYS[1] registry; ARGV fence (1/0), holder… Returns {now, created, expiry or '' per holder}.
# A fenced holder "h:x" becomes "f:x" with the same expiry: it cannot renew, only run out,
# and every publisher still waits for it.
CHECK_LUA = (
    _REGISTRY_LUA
    + """
local now, created = registry(KEYS[1])
local out = {now, created}
for i = 2, #ARGV do
  local fenced = 'f:' .. string.sub(ARGV[i], 3)
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and ARGV[1] == '1' then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[1], score, fenced)
  end
  out[#out + 1] = score or redis.call('ZSCORE', KEYS[1], fenced) or ''
end
return out
"""
)

# KEYS[1] registry; ARGV holder or '', lease ms. Tests only (see cache.py): a registry as old
# as can be, and the holder's lease back in it.
ADOPT_LUA = (
    _REGISTRY_LUA
    + """
local now, created = registry(KEYS[1])
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
redis.call('ZREM', KEYS[1], 'registry:' .. run .. ':' .. created)
redis.call('ZADD', KEYS[1], '+inf', 'registry:' .. run .. ':0')
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
return now
"""
)

# KEYS[1] registry; ARGV holder. Returns 1 if it was there.
RELEASE_LUA = "return redis.call('ZREM', KEYS[1], ARGV[1])"


def lease_seconds() -> float:
    return float(getattr(settings, "KEYWARD_LEASE_SECONDS", 2.0))


_acquire, _renew = Script(ACQUIRE_LUA), Script(RENEW_LUA)
_publish, _check, _release = Script(PUBLISH_LUA), Script(CHECK_LUA), Script(RELEASE_LUA)
_adopt = Script(ADOPT_LUA)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Bus:
    """The names and connections of one Redis cache's leases and invalidations.

    Connections are made here, one per use, never taken from a pool: a pool or
    redis-py's PubSub reconnects behind the caller's back, and a subscription
    that was silently re-made may have missed a message. Every error surfaces.
    """

    def __init__(self, backend: RedisCache) -> None:
        self.backend = backend
        db = backend._cache._get_connection_pool(write=True).connection_kwargs.get("db", 0)
        self.registry = backend.make_key("keyward:leases")
        # Publish/subscribe ignores database numbers: the channel names its database.
        self.channel = f"{backend.make_key('keyward:invalidations')}@db{db}"
        self.ack_prefix = backend.make_key("keyward:ack:")

    def connect(self, timeout: float) -> Any:
        return redis_connection(self.backend, timeout)


def invalidation_message(organization_id: int, invalidation_id: str) -> str:
    return f"inv {organization_id} {invalidation_id}"


def parse_invalidation(data: Any) -> tuple[int, str] | None:
    """Return (organisation id, invalidation id) of a message, or None for anything else."""
    try:
        kind, organization, invalidation = _text(data).split(" ")
        organization_id = int(organization)
    except (ValueError, UnicodeDecodeError):
        return None
    if kind != "inv" or organization_id <= 0 or not invalidation.isalnum():
        return None
    return organization_id, invalidation


class Publisher:
    """Publish an organisation's invalidation and wait for every live lease holder.

    Each thread keeps its own connection (a request thread, a command). Raises
    when Redis cannot be reached; the caller decides what that means.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.local = threading.local()

    def _connection(self, timeout: float) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None or self.local.pid != os.getpid():
            connection = self.bus.connect(timeout)
            self.local.connection, self.local.pid = connection, os.getpid()
        return connection

    def publish_and_wait(self, organization_id: int, lease: float | None = None) -> float:
        """Publish, then return once every live holder acknowledged or ran out; return seconds."""
        lease = lease_seconds() if lease is None else lease
        started = time.monotonic()
        connection = self._connection(lease + 1)
        try:
            self._publish_and_wait(connection, organization_id, lease, started)
        except BaseException:
            self.local.connection = None
            connection.disconnect()
            raise
        return time.monotonic() - started

    def publish(self, organization_id: int) -> None:
        """Publish without waiting (a late retry: nobody is waiting for its answer)."""
        connection = self._connection(lease_seconds() + 1)
        try:
            message = invalidation_message(organization_id, uuid.uuid4().hex)
            _publish(connection, [self.bus.registry], [self.bus.channel, message])
        except BaseException:
            self.local.connection = None
            connection.disconnect()
            raise

    def _publish_and_wait(
        self, connection: Any, organization_id: int, lease: float, started: float
    ) -> None:
        bus = self.bus
        invalidation = uuid.uuid4().hex
        acks = bus.ack_prefix + invalidation
        message = invalidation_message(organization_id, invalidation)
        reply = _publish(connection, [bus.registry], [bus.channel, message])
        clock = _RedisClock(float(reply[0]))
        not_before = float(reply[1]) + lease * 1000  # a young registry: see the module docstring
        waiting = {_text(reply[i]): float(reply[i + 1]) for i in range(2, len(reply), 2)}
        fence_at = started + lease / 2
        fenced = False
        while waiting:
            wake = min(waiting.values()) - clock.now()
            if not fenced:
                wake = min(wake, (fence_at - time.monotonic()) * 1000)
            timeout = min(max(wake / 1000, 0.002), 0.1)
            connection.send_command("BLPOP", acks, f"{timeout:.3f}")
            popped = connection.read_response()
            if popped is not None:
                waiting.pop(_text(popped[1]), None)
                continue
            fence = not fenced and time.monotonic() >= fence_at
            names = list(waiting)
            reply = _check(connection, [bus.registry], ["1" if fence else "0", *names])
            redis_now = float(reply[0])
            clock.set(redis_now)
            not_before = max(not_before, float(reply[1]) + lease * 1000)
            for name, score in zip(names, reply[2:], strict=True):
                expiry = float(_text(score)) if _text(score) else 0.0
                if expiry <= redis_now:
                    del waiting[name]  # ran out, or released as its process stopped
                else:
                    waiting[name] = expiry  # renewed meanwhile, or fenced at this expiry
            fenced = fenced or fence
        redis_now = clock.redis_ms
        while redis_now < not_before:  # decided by Redis's clock, as leases run out by it
            time.sleep(min((not_before - redis_now) / 1000, 0.1))
            connection.send_command("TIME")
            seconds, micros = connection.read_response()
            redis_now = int(seconds) * 1000 + int(micros) / 1000
        connection.send_command("DEL", acks)
        connection.read_response()


class _RedisClock:
    """Redis's clock (ms), as last read, advanced by the local one since."""

    def __init__(self, redis_ms: float) -> None:
        self.set(redis_ms)

    def set(self, redis_ms: float) -> None:
        self.redis_ms, self.local = redis_ms, time.monotonic()

    def now(self) -> float:
        return self.redis_ms + (time.monotonic() - self.local) * 1000


class LeaseHolder:
    """This process's lease and subscription: says whether its verified-key cache may be trusted.

    `trusted()` is the only call on the request path: a comparison of two floats.
    The work is a daemon thread's, started on the first call in each process
    (a forked worker starts its own). `on_invalidation(organization_id)` drops an
    organisation's entries; `on_reacquire()` empties the cache.
    """

    def __init__(
        self,
        on_invalidation: Callable[[int], None],
        on_reacquire: Callable[[], None],
        backend: Any = None,
        lease: float | None = None,
        on_renewed: Callable[[], None] | None = None,
    ) -> None:
        self.on_invalidation = on_invalidation
        self.on_reacquire = on_reacquire
        self.on_renewed = on_renewed
        self.renewing = threading.Lock()  # held while the lease is acquired or renewed
        self._backend = backend
        self._lease = lease
        self.deadline = 0.0
        self.holder: str | None = None
        self._pid: int | None = None
        self._mode: str | None = None  # "local", "redis" or "untrusted", per process
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bus: Bus | None = None
        self.acquisitions = 0
        self.pause = threading.Event()  # tests: a set event freezes the thread at its next step
        self.paused = threading.Event()  # … and this one says it is frozen
        self.drop_next_message = False  # tests: lose one publication on the way

    @property
    def lease(self) -> float:
        return lease_seconds() if self._lease is None else self._lease

    def backend(self) -> Any:
        return caches["default"] if self._backend is None else self._backend

    def trusted(self) -> bool:
        """Return whether this process may answer from its verified-key cache now."""
        if self._pid != current_pid():
            self._start()
        if self._mode == "redis":
            return time.monotonic() < self.deadline
        return self._mode == "local"

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            backend = self.backend()
            self.deadline = 0.0
            self.holder = None
            if isinstance(backend, LocMemCache | DummyCache):
                self._mode = "local"  # one process: every invalidation is a call in it
            elif isinstance(backend, RedisCache):
                self._mode = "redis"
                self.bus = Bus(backend)
                atexit.register(self.stop)  # a graceful exit gives the lease up
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, name="keyward-lease", daemon=True)
                self._thread.start()
            else:
                self._mode = "untrusted"  # a shared cache without publish/subscribe
            self._pid = os.getpid()

    def stop(self, release: bool = True) -> None:
        """Stop the thread and, with `release`, give the lease up (graceful exit, tests)."""
        self._stop.set()
        self.pause.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.lease + 5)
        self._thread = None
        self.deadline = 0.0
        if release and self.holder is not None and self.bus is not None:
            try:
                connection = self.bus.connect(1.0)
                try:
                    _release(connection, [self.bus.registry], [self.holder])
                finally:
                    connection.disconnect()
            except Exception:  # noqa: S110  (it runs out by itself)
                pass
        self.holder = None
        self._pid = None

    # The thread.

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.05
            except Exception as error:  # Redis down, slow, or answering garbage
                self.deadline = 0.0
                if not self._stop.is_set():
                    logger.warning(
                        "Lease lost (%s); this process reads keys from the database until "
                        "Redis answers again.",
                        type(error).__name__,
                    )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)

    def _session(self) -> None:
        """Subscribe, acquire, then renew and acknowledge until something fails."""
        bus = self.bus
        lease = self.lease
        listen = bus.connect(lease)
        command = bus.connect(lease)
        try:
            listen.send_command("SUBSCRIBE", bus.channel)
            reply = listen.read_response()
            if _text(reply[0]) != "subscribe":
                raise ConnectionError("unexpected reply to SUBSCRIBE")
            self._acquire(command, lease)
            interval = lease / RENEWALS_PER_LEASE
            next_renewal = time.monotonic() + interval
            ping: str | None = None
            ping_sent = 0.0
            while not self._stop.is_set():
                self._hold_if_paused()
                now = time.monotonic()
                if ping is None and now >= next_renewal:
                    ping, ping_sent = uuid.uuid4().hex, now
                    listen.send_command("PING", ping)
                if ping is not None and now - ping_sent > lease:
                    raise TimeoutError("the subscription did not answer a PING")
                wait = max(0.0, (next_renewal if ping is None else ping_sent + lease) - now)
                if not listen.can_read(timeout=min(wait, interval)):
                    continue
                self._hold_if_paused()
                acks, ponged = self._read_all(listen, ping)
                if acks:
                    self._acknowledge(command, acks, lease)
                if ponged:
                    ping = None
                    renewed_at = time.monotonic()
                    if self._renew(command, lease, renewed_at):
                        next_renewal = renewed_at + interval
                    else:
                        next_renewal = time.monotonic() + interval
        finally:
            self.deadline = 0.0
            listen.disconnect()
            command.disconnect()

    def _hold_if_paused(self) -> None:
        while self.pause.is_set() and not self._stop.is_set():
            self.paused.set()
            time.sleep(0.01)
        self.paused.clear()

    def adopt_registry(self) -> None:
        """Tests only: see apikeys.cache.clear_shared_cache_for_tests. Hold `renewing`."""
        bus = self.bus or Bus(self.backend())
        connection = bus.connect(2.0)
        try:
            holder = self.holder if self._mode == "redis" and self._pid == os.getpid() else None
            _adopt(connection, [bus.registry], [holder or "", int(self.lease * 1000)])
        finally:
            connection.disconnect()

    def _acquire(self, command: Any, lease: float) -> None:
        """Register a new lease, then empty the cache, then trust it (this order matters)."""
        with self.renewing:
            self._acquire_locked(command, lease)

    def _acquire_locked(self, command: Any, lease: float) -> None:
        self.deadline = 0.0
        holder = f"{HOLDER_PREFIX}{uuid.uuid4().hex}"
        sent = time.monotonic()
        previous = self.holder or ""
        _acquire(command, [self.bus.registry], [holder, int(lease * 1000), previous])
        self.holder = holder
        self.on_reacquire()
        self.acquisitions += 1
        self.deadline = sent + lease * TRUST_SHARE

    def _renew(self, command: Any, lease: float, sent: float) -> bool:
        """Extend the lease; if it had run out (or was fenced), acquire a new one."""
        with self.renewing:
            reply = _renew(command, [self.bus.registry], [self.holder, int(lease * 1000)])
            renewed = int(reply[2]) == 1
            if renewed:
                self.deadline = sent + lease * TRUST_SHARE
            else:
                logger.warning("Lease ran out; emptying this process's verified-key cache.")
                self._acquire_locked(command, lease)
        if self.on_renewed is not None:
            self.on_renewed()
        return renewed

    def _read_all(self, listen: Any, ping: str | None) -> tuple[list[str], bool]:
        """Read every message waiting; drop what they invalidate; return acks and the pong."""
        acks: list[str] = []
        ponged = False
        while True:
            message = listen.read_response()
            kind = _text(message[0])
            if kind == "message":
                if self.drop_next_message:
                    self.drop_next_message = False
                else:
                    acks.extend(self._handle(message[2]))
            elif kind == "pong" and ping is not None and _text(message[1]) == ping:
                ponged = True
            if not listen.can_read(timeout=0):
                return acks, ponged

    def _handle(self, data: Any) -> list[str]:
        parsed = parse_invalidation(data)
        if parsed is None:
            logger.info("Ignoring a malformed invalidation message.")
            return []
        organization_id, invalidation = parsed
        self.on_invalidation(organization_id)  # an organisation unknown here drops nothing
        return [self.bus.ack_prefix + invalidation]

    def _acknowledge(self, command: Any, acks: list[str], lease: float) -> None:
        ttl = int(lease * 10_000)
        commands = []
        for name in acks:
            commands += [("RPUSH", name, self.holder), ("PEXPIRE", name, ttl)]
        command.send_packed_command(command.pack_commands(commands))
        for _ in commands:
            command.read_response()
