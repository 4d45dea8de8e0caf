"""Counters in the cache, shared by rate limits, quotas and failed-key tallies.

With Django's Redis backend a counter is one round trip (INCRBY with EXPIRE NX in
a pipeline) and every process sees the same number. With any other backend the
counter goes through `add()` and `incr()`, which are atomic in local memory (one
process) and in memcached.

`RedisCommands` is how Keyward talks to Redis where speed matters (a limited
key's rate, the quota's exact end, the background senders): raw commands over
one connection per thread and process, with a timeout, and a short pause after
a failure so that a Redis that hangs costs one timeout, not one per request.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from typing import Any

from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from redis._parsers import _RESP2Parser
from redis.exceptions import NoScriptError

# A request never waits longer than this for Redis; a slower Redis counts as down.
REQUEST_TIMEOUT = 1.0
# After a failure, Redis is not asked again for this long (the callers fail open or fall back).
PAUSE_AFTER_FAILURE = 1.0


# This process's id, kept up to date across forks without a system call per request
# (glibc no longer caches getpid): the hot paths ask it whether they run in a new worker.
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def current_pid() -> int:
    """Return this process's id (as os.getpid(), without the system call)."""
    return _pid[0]


def backend_of(cache: Any) -> Any:
    """Return the cache backend behind Django's `cache` proxy (or `cache` itself)."""
    if isinstance(cache, ConnectionProxy):
        return cache._connections[cache._alias]
    return cache


def is_shared(cache: Any) -> bool:
    """Return whether other processes see this cache (anything but local memory)."""
    return not isinstance(backend_of(cache), LocMemCache | DummyCache)


def redis_connection(backend: RedisCache, timeout: float) -> Any:
    """Return a new, connected raw connection to the Redis server of `backend`.

    Never from a pool: the caller owns it, and every error surfaces instead of a
    silent reconnect. RESP2, so that publish/subscribe messages are plain replies.
    """
    pool = backend._cache._get_connection_pool(write=True)
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if not name.startswith(("maint_", "orig_", "himport", "parser_class", "protocol"))
    }
    connection = pool.connection_class(
        **{
            **kwargs,
            "socket_timeout": timeout,
            "socket_connect_timeout": min(timeout, 2.0),
            "health_check_interval": 0,
            "retry": None,
            "protocol": 2,
            "parser_class": _RESP2Parser,
        }
    )
    connection.connect()
    return connection


class Script:
    """A Lua script sent by its SHA, and in full when Redis does not know it (a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, connection: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
            return connection.read_response()
        except NoScriptError:
            pass
        connection.send_command("EVAL", self.source, len(keys), *keys, *args)
        return connection.read_response()


class RedisDown(ConnectionError):
    """Redis failed just now; it is not asked again for a moment."""


class RedisCommands:
    """Raw commands and scripts on one connection per thread and process (see the docstring)."""

    def __init__(self, backend: RedisCache, timeout: float = REQUEST_TIMEOUT) -> None:
        self.backend = backend
        self.timeout = timeout
        self.local = threading.local()
        self.paused_until = 0.0

    def _connection(self) -> Any:
        if time.monotonic() < self.paused_until:
            raise RedisDown("Redis failed a moment ago")
        connection = getattr(self.local, "connection", None)
        if connection is None or self.local.pid != current_pid():  # never share across a fork
            connection = redis_connection(self.backend, self.timeout)
            self.local.connection, self.local.pid = connection, current_pid()
        return connection

    def _failed(self, connection: Any) -> None:
        self.local.connection = None
        self.paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        if connection is not None:
            connection.disconnect()

    def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send commands in one write and return their replies: one round trip."""
        connection = None
        try:
            connection = self._connection()
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            return [connection.read_response() for _command in commands]
        except RedisDown:
            raise
        except Exception:
            self._failed(connection)
            raise

    def script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script: one round trip (two the first time after a Redis restart)."""
        connection = None
        try:
            connection = self._connection()
            return script(connection, keys, args)
        except RedisDown:
            raise
        except Exception:
            self._failed(connection)
            raise


_commands: weakref.WeakKeyDictionary[Any, RedisCommands] = weakref.WeakKeyDictionary()


def redis_commands(cache: Any) -> RedisCommands | None:
    """Return the raw command sender of a Redis cache, or None for another backend."""
    backend = backend_of(cache)
    if not isinstance(backend, RedisCache):
        return None
    commands = _commands.get(backend)
    if commands is None:
        commands = _commands[backend] = RedisCommands(backend)
    return commands


# One client per backend: Django's get_client() builds a new redis-py client on every
# call (a few hundred dict writes, ~100 µs of CPU). A client over a pool is thread-safe,
# and the pool reconnects after a fork. For the background senders and flushes.
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
        for command in incr_commands(backend_of(cache), key, ttl, amount):
            pipe.execute_command(*command)
        return int(pipe.execute()[0])
    for _attempt in range(3):
        cache.add(key, 0, ttl)
        try:
            return int(cache.incr(key, amount))
        except ValueError:  # expired between add() and incr(): start again
            continue
    return amount
