"""The one shared-cache round trip of a warm authenticated request.

A request whose key this process holds verified (apikeys/cache.py) adds, if
the key is still good, to its usage count, its rate-limit window and its
organisation's daily quota. With Redis these are one pipeline, planned from
the cached state. What was
counted waits in the request's state (apikeys/request_state.py) for the code
that would have counted it (authentication's usage count, the throttles); a count nobody
claims — the reloaded key was refused, its limits changed, a permission
refused the request before its throttles ran — is given back by `settle()`,
one more round trip on those rare paths only. With any other cache, or when
Redis does not answer, nothing is counted here and each counts for itself.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache.backends.redis import RedisCache

from apikeys.counters import backend_of, incr_commands
from apikeys.request_state import existing_state, request_state

logger = logging.getLogger("keyward.roundtrip")

USAGE = "usage"


@dataclass
class _Counted:
    value: int
    undo: list[tuple[Any, ...]]
    claimed: bool = False


@dataclass
class RequestCounters:
    """What one request's round trip counted, until its owners claim it or settle() returns it."""

    send: Callable[[list[tuple[Any, ...]]], list[Any]]
    counted: dict[str, _Counted] = field(default_factory=dict)

    def claim(self, name: str) -> int | None:
        """Return the value counted under `name` and take it over, or None if there is none."""
        counted = self.counted.get(name)
        if counted is None or counted.claimed:
            return None
        counted.claimed = True
        return counted.value

    def settle(self) -> None:
        """Give back every count nobody claimed, in one round trip."""
        undo = []
        for counted in self.counted.values():
            if not counted.claimed:
                undo.extend(counted.undo)
                counted.claimed = True
        if not undo:
            return
        try:
            self.send(undo)
        except Exception:  # the counts then err towards counting, as a lost DECR would
            logger.warning("Shared cache unreachable; a refused request's counts stay counted.")


def claim(request: Any, name: str) -> int | None:
    """Return what the request's round trip counted under `name` (now the caller's), or None."""
    state = existing_state(request)
    if state is None or state.counters is None:
        return None
    return state.counters.claim(name)


def settle(request: Any) -> None:
    """Give back what the request's round trip counted and nobody claimed."""
    state = existing_state(request)
    if state is not None:
        state.settle()


class _RawCommands:
    """Send raw commands over a connection of this thread's own, on the primary server.

    Django's Redis backend builds a new redis-py client (a few hundred dict
    writes) on every call, and redis-py's command path (retries, health
    checks, pool checkout) costs twice the round trip's own CPU; so one
    connection per thread and process instead. Any error drops the connection
    and propagates.
    """

    def __init__(self, backend: RedisCache) -> None:
        self.pool = backend._cache._get_connection_pool(write=True)
        self.local = threading.local()

    def _connection(self) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None or self.local.pid != os.getpid():  # never share across a fork
            connection = self.pool.make_connection()
            self.local.connection, self.local.pid = connection, os.getpid()
        return connection

    def __call__(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send raw commands in one write and return their replies: one round trip."""
        connection = self._connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            return [connection.read_response() for _command in commands]
        except BaseException:
            self.local.connection = None
            connection.disconnect()
            raise


_senders: weakref.WeakKeyDictionary[Any, _RawCommands] = weakref.WeakKeyDictionary()


def shared_commands(backend: Any) -> _RawCommands | None:
    """Return how to send raw commands to the cache `backend`, if it is Redis."""
    if not isinstance(backend, RedisCache):
        return None
    sender = _senders.get(backend)
    if sender is None:
        sender = _senders[backend] = _RawCommands(backend)
    return sender


class SharedRoundTrip:
    """Count a warm request where it will count, in one round trip."""

    def count_ahead(self, request: Any, key: Any, usage: Any) -> None:
        """Count the request with `key` (this process's cached copy) in one round trip.

        What its limits say decides what is counted along; the claims check it
        against the state the request is finally served with.
        """
        backend = backend_of(usage.cache)
        send = shared_commands(backend)
        if send is None:
            return
        planned: list[tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]] = [
            (USAGE, [usage.shared_command(key.pk)], [usage.shared_command(key.pk, -1)])
        ]
        for throttle in self._throttles(request):
            counter = throttle.shared_counter(key)
            if counter is None or backend_of(throttle.cache) is not backend:
                continue
            name, ttl = counter
            if all(name != planned_name for planned_name, _c, _u in planned):
                undo = incr_commands(backend, name, ttl, -1)
                planned.append((name, incr_commands(backend, name, ttl), undo))
        commands = [command for _name, sent, _undo in planned for command in sent]
        try:
            replies = send(commands)
        except Exception:  # each then counts for itself, or not at all if Redis stays down
            logger.warning("Shared cache unreachable; counting as the request goes.")
            return
        counters = RequestCounters(send)
        position = 0
        for name, sent, undo in planned:
            counters.counted[name] = _Counted(int(replies[position]), undo)
            position += len(sent)
        request_state(request).counters = counters

    @staticmethod
    def _throttles(request: Any) -> list[Any]:
        """Return the request's view's throttles that can count in the round trip.

        Only when the request's state is closed by the middleware, which gives back
        what a throttle that never ran did not claim (apikeys/request_state.py).
        """
        view = (getattr(request, "parser_context", None) or {}).get("view")
        state = existing_state(request)
        if view is None or state is None or not state.closes_at_response:
            return []
        return [cls() for cls in view.throttle_classes if hasattr(cls, "shared_counter")]
