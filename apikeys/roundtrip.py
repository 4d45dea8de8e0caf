"""The one shared-cache round trip of a warm authenticated request.

A request whose key this process has verified before needs the organisation's
generation (apikeys/cache.py) and, if the key is still good, adds to its usage
count, its rate-limit window and its organisation's daily quota. With Redis
these are one pipeline on the generations' connection, planned from the cached
state before the generation says whether that state still holds. What was
counted waits in the request's state (apikeys/request_state.py) for the code
that would have counted it (authentication's usage count, the throttles); a count nobody
claims — the reloaded key was refused, its limits changed, a permission
refused the request before its throttles ran — is given back by `settle()`,
one more round trip on those rare paths only. With any other cache, or when
Redis does not answer, nothing is counted here and each counts as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apikeys.cache import generation_backend, read_generation, read_generation_with, shared_commands
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


class SharedRoundTrip:
    """Read the generation and count the request where it will count, in one round trip."""

    def read_generation(self, request: Any, organization_id: int, key: Any, usage: Any) -> Any:
        """Return the organisation's generation, as read_generation() does.

        `key` is this process's cached copy: what it says about the key's limits
        decides what is counted along, and the claims check it against the state
        the request is finally served with.
        """
        send = shared_commands()
        if send is None:
            return read_generation(organization_id)
        backend = generation_backend()
        planned: list[tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
        if backend_of(usage.cache) is backend:
            planned.append(
                (USAGE, [usage.shared_command(key.pk)], [usage.shared_command(key.pk, -1)])
            )
        for throttle in self._throttles(request):
            counter = throttle.shared_counter(key)
            if counter is None or backend_of(throttle.cache) is not backend:
                continue
            name, ttl = counter
            if all(name != planned_name for planned_name, _c, _u in planned):
                undo = incr_commands(backend, name, ttl, -1)
                planned.append((name, incr_commands(backend, name, ttl), undo))
        commands = [command for _name, sent, _undo in planned for command in sent]
        generation, replies = read_generation_with(organization_id, commands)
        if replies is None:
            return generation
        counters = RequestCounters(send)
        position = 0
        for name, sent, undo in planned:
            counters.counted[name] = _Counted(int(replies[position]), undo)
            position += len(sent)
        request_state(request).counters = counters
        return generation

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
