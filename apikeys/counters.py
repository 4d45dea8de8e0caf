"""Atomic counters in the cache, shared by rate limits, quotas and failed-key tallies.

With Django's Redis backend a counter is one round trip (INCRBY with EXPIRE NX in
a pipeline) and every process sees the same number. With any other backend the
counter goes through `add()` and `incr()`, which are atomic in local memory (one
process) and in memcached.
"""

from __future__ import annotations

import weakref
from typing import Any

from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.utils.connection import ConnectionProxy


def backend_of(cache: Any) -> Any:
    """Return the cache backend behind Django's `cache` proxy (or `cache` itself)."""
    if isinstance(cache, ConnectionProxy):
        return cache._connections[cache._alias]
    return cache


def is_shared(cache: Any) -> bool:
    """Return whether other processes see this cache (anything but local memory)."""
    return not isinstance(backend_of(cache), LocMemCache | DummyCache)


# One client per backend: Django's get_client() builds a new redis-py client on every
# call (a few hundred dict writes, ~100 µs of CPU), and every authenticated request
# counts its usage. A client over a pool is thread-safe, and the pool reconnects after
# a fork.
_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def redis_client(cache: Any) -> Any | None:
    """Return the redis-py client of Django's Redis cache backend, or None for another one."""
    backend = backend_of(cache)
    inner = getattr(backend, "_cache", None)
    if inner is None or type(inner).__name__ != "RedisCacheClient":
        return None
    client = _clients.get(inner)
    if client is None:
        client = _clients[inner] = inner.get_client(write=True)
    return client


def incr_commands(cache: Any, key: str, ttl: int, amount: int = 1) -> list[tuple[Any, ...]]:
    """Return the raw Redis commands of incr_with_ttl; the first one's reply is the value."""
    name = cache.make_and_validate_key(key)
    return [("INCRBY", name, amount), ("EXPIRE", name, ttl, "NX")]


def incr_with_ttl(cache: Any, key: str, ttl: int, amount: int = 1) -> int:
    """Add `amount` to the counter `key` (created to live `ttl` seconds); return its value."""
    client = redis_client(cache)
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for command in incr_commands(cache, key, ttl, amount):
            pipe.execute_command(*command)
        return int(pipe.execute()[0])
    for _attempt in range(3):
        cache.add(key, 0, ttl)
        try:
            return int(cache.incr(key, amount))
        except ValueError:  # expired between add() and incr(): start again
            continue
    return amount
