"""The per-process cache of verified keys, and the generations that invalidate it.

Each organisation has a generation in the shared cache: a random value replaced
whenever something that decides authentication changes (a key revoked, rotated
or updated; a member's role; the organisation's policy). A process keeps the
state of a key it verified together with the generation it read *before*
loading that state, and trusts it only while the shared generation is still
the same: one cache read, and no database query, per request. A change bumps
the generation after its transaction commits and before its response is
sent, so a request that starts after that response sees the new generation in
every process. With the local-memory default there is one process and the
guarantee is trivial; with Redis every process reads the same value.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

logger = logging.getLogger("keyward.keycache")

GENERATION_KEY = "keyward:gen:org:{}"
# Generations live long; losing one only costs a reload, never a stale answer
# (read_generation makes a fresh one, which no cached entry can match).
GENERATION_TIMEOUT = 7 * 24 * 3600
_UNREADABLE = object()


def generation_key(organization_id: int) -> str:
    return GENERATION_KEY.format(organization_id)


_readers: weakref.WeakKeyDictionary[Any, Callable[[str], Any]] = weakref.WeakKeyDictionary()


def _backend(cache: Any) -> Any:
    return caches["default"] if cache is None or cache is default_cache else cache


class _RedisGenerationReader:
    """GET one key over a connection of this thread's own, on the primary server.

    Django's Redis backend builds a new redis-py client (a few hundred dict
    writes) on every call, and redis-py's command path (retries, health
    checks, pool checkout) costs twice the round trip's own CPU; every
    request reads a generation, so it keeps one connection per thread and
    process instead. It talks to the first server, where every bump is
    written: a replica may lag behind a bump. Any error drops the connection
    and propagates (the caller then trusts nothing cached).
    """

    def __init__(self, backend: RedisCache) -> None:
        self.backend = backend
        self.pool = backend._cache._get_connection_pool(write=True)
        self.loads = backend._cache._serializer.loads
        self.local = threading.local()

    def _connection(self) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None or self.local.pid != os.getpid():  # never share across a fork
            connection = self.pool.make_connection()
            self.local.connection, self.local.pid = connection, os.getpid()
        return connection

    def __call__(self, key: str) -> Any:
        raw = self.execute([("GET", self.backend.make_key(key))])[0]
        return None if raw is None else self.loads(raw)

    def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send raw commands in one write and return their replies: one round trip."""
        connection = self._connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            return [connection.read_response() for _command in commands]
        except BaseException:
            self.local.connection = None
            connection.disconnect()
            raise


def _reader(cache: Any) -> Callable[[str], Any]:
    """Return the fastest safe `get` for the cache that holds generations."""
    backend = _backend(cache)
    reader = _readers.get(backend)
    if reader is None:
        reader = _RedisGenerationReader(backend) if isinstance(backend, RedisCache) else backend.get
        _readers[backend] = reader
    return reader


def read_generation(organization_id: int, cache: Any = None) -> Any:
    """Return the organisation's generation, making one when absent, or _UNREADABLE.

    A generation is never None: when the shared cache has lost it (a restart, an
    eviction, a flush), the first reader makes a new random one, so state cached
    under the old one is never trusted again, even by a process that kept it
    through an outage in which a revocation could not bump the generation.
    """
    return read_generation_with(organization_id, [], cache)[0]


def read_generation_with(
    organization_id: int, commands: list[tuple[Any, ...]], cache: Any = None
) -> tuple[Any, list[Any] | None]:
    """Read the generation as read_generation does, sending `commands` in the same round trip.

    `commands` are raw Redis commands on the cache's own (prefixed) key names;
    their replies come back second, or None when they were not sent: the cache
    is not Redis, or it did not answer.
    """
    key = generation_key(organization_id)
    replies = None
    try:
        _retry_missed_invalidations(_backend(cache))
        read = _reader(cache)
        if commands and isinstance(read, _RedisGenerationReader):
            raw, *replies = read.execute([("GET", read.backend.make_key(key)), *commands])
            generation = None if raw is None else read.loads(raw)
        else:
            generation = read(key)
        if generation is None:
            _backend(cache).add(key, uuid.uuid4().hex, GENERATION_TIMEOUT)
            generation = read(key)
    except Exception:  # the shared cache is down: trust nothing cached, then or later
        logger.warning("Shared cache unreachable while reading a key generation.")
        verified_keys.clear()
        return _UNREADABLE, None
    return (_UNREADABLE if generation is None else generation), replies


def shared_commands(cache: Any = None) -> Callable[[list[tuple[Any, ...]]], list[Any]] | None:
    """Return how to send raw commands over the generations' connection, if it is Redis."""
    read = _reader(cache)
    return read.execute if isinstance(read, _RedisGenerationReader) else None


def generation_backend(cache: Any = None) -> Any:
    """Return the cache backend that holds the generations."""
    return _backend(cache)


# Organisations whose invalidation the shared cache missed; bumped once it answers.
_missed_invalidations: set[int] = set()


def _retry_missed_invalidations(cache: Any) -> None:
    while _missed_invalidations:
        organization_id = _missed_invalidations.pop()
        try:
            cache.set(generation_key(organization_id), uuid.uuid4().hex, GENERATION_TIMEOUT)
        except Exception:
            _missed_invalidations.add(organization_id)
            raise


def invalidate_organization(organization_id: int, cache: Any = None) -> None:
    """Make every process drop what it cached about the organisation's keys."""
    try:
        (cache or default_cache).set(
            generation_key(organization_id), uuid.uuid4().hex, GENERATION_TIMEOUT
        )
    except Exception:
        _missed_invalidations.add(organization_id)
        logger.error(
            "Shared cache unreachable: could not invalidate cached keys of organisation %s; "
            "retrying when it answers.",
            organization_id,
        )
    verified_keys.drop_organization(organization_id)


def invalidate_when_committed(organization_id: int) -> None:
    """Invalidate now and again once the caller's transaction commits.

    The second bump is the one that matters: a request that loaded the old
    row between the first bump and the commit cached it under the first
    generation, which the second one retires. The first bump makes the
    change visible at once to code that runs inside the same transaction.
    """
    invalidate_organization(organization_id)
    transaction.on_commit(lambda: invalidate_organization(organization_id))


@dataclass
class Entry:
    generation: Any
    stored_at: float
    state: Any


class VerifiedKeyCache:
    """Key id → verified state, trusted only while the organisation's generation holds."""

    max_entries = 50_000
    max_age = 300.0
    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._organizations: dict[str, int] = {}
        self._lock = threading.Lock()

    def organization_of(self, key_id: str) -> int | None:
        """Return the organisation a key belongs to, if this process has seen it."""
        return self._organizations.get(key_id)

    def remember_organization(self, key_id: str, organization_id: int) -> None:
        """Note a key's organisation: it never changes, so it needs no invalidation."""
        if len(self._organizations) >= self.max_entries:
            self._organizations.clear()
        self._organizations[key_id] = organization_id

    def get(self, key_id: str, generation: Any) -> Any | None:
        entry = self._entries.get(key_id)
        if entry is None or generation is _UNREADABLE:
            return None
        if entry.generation != generation or self.clock() - entry.stored_at > self.max_age:
            self._entries.pop(key_id, None)
            return None
        return entry.state

    def put(self, key_id: str, generation: Any, state: Any) -> None:
        if generation is _UNREADABLE:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key_id] = Entry(generation, self.clock(), state)

    def peek(self, key_id: str) -> Any | None:
        """Return the cached state whatever its generation: only to plan the round trip."""
        entry = self._entries.get(key_id)
        return None if entry is None else entry.state

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)

    def note_use(self, key_id: str, when: Any, address: str | None) -> None:
        """Record in the cached copy that the database now holds this last use."""
        entry = self._entries.get(key_id)
        if entry is not None:
            entry.state.key.last_used_at = when
            entry.state.key.last_used_ip = address

    def drop_organization(self, organization_id: int) -> None:
        with self._lock:
            stale = [k for k, org in self._organizations.items() if org == organization_id]
            for key_id in stale:
                self._entries.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._organizations.clear()


verified_keys = VerifiedKeyCache()
