"""The per-process cache of verified keys, and the invalidations that empty it.

A process keeps the state of each key it verified (the key, its organisation,
its owner's role) and answers from it without a query or a round trip, but
only while it may trust it: with the local-memory cache (one process) always;
with Redis only while this process's lease is fresh (apikeys/leases.py). A
change that alters what authentication decides (a key revoked, rotated or
updated; a member removed or demoted; the organisation's policy) drops the
organisation's entries here at once, and again once its transaction has
committed, when it also publishes the organisation's invalidation and waits
until every other live process has dropped them too, before its response is
sent. docs/architecture-invalidation.md gives the protocol and its argument.

A load from the database can race with an invalidation: it may read the row as
it was before the change and finish after the invalidation was handled. So a
load takes a ticket before it reads, and its result is kept only if no
invalidation of its organisation (and no emptying of the whole cache) came
after the ticket.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

from apikeys.leases import LeaseHolder, Publisher, lease_seconds

logger = logging.getLogger("keyward.keycache")


@dataclass
class Entry:
    organization_id: int
    stored_at: float
    state: Any


class VerifiedKeyCache:
    """Key id → verified state, answered only while this process may trust it."""

    max_entries = 50_000
    # Entries are reloaded now and then whatever happens: a bound on memory, not on
    # staleness (invalidations are what keep them right).
    max_age = 300.0
    # Remembered invalidations (organisation → when): a flood beyond this empties all.
    max_invalidated = 100_000
    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._by_organization: dict[int, set[str]] = {}
        self._organizations: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sequence = 0  # counts invalidations handled in this process
        self._emptied_at = 0  # the sequence of the last time everything was dropped
        self._invalidated_at: dict[int, int] = {}  # organisation → sequence of its last one
        self.lease = LeaseHolder(
            self.drop_organization, self.clear, on_renewed=lambda: _retry_quietly()
        )

    def trusted(self) -> bool:
        """Return whether this process may answer from its cache now."""
        return self.lease.trusted()

    def organization_of(self, key_id: str) -> int | None:
        """Return the organisation a key belongs to, if this process has seen it."""
        return self._organizations.get(key_id)

    def remember_organization(self, key_id: str, organization_id: int) -> None:
        """Note a key's organisation: it never changes, so it needs no invalidation."""
        if len(self._organizations) >= self.max_entries:
            self._organizations.clear()
        self._organizations[key_id] = organization_id

    def get(self, key_id: str) -> Any | None:
        """Return the key's cached state if this process may trust it now, else None."""
        entry = self._entries.get(key_id)
        if entry is None or not self.lease.trusted():
            return None
        if self.clock() - entry.stored_at > self.max_age:
            self.forget(key_id)
            return None
        return entry.state

    def ticket(self) -> int:
        """Return the ticket a load takes before it reads the database (see the docstring)."""
        return self._sequence

    def put(self, key_id: str, organization_id: int, ticket: int, state: Any) -> bool:
        """Keep state loaded under `ticket`, unless an invalidation came since; return if kept."""
        with self._lock:
            if ticket < self._emptied_at or ticket < self._invalidated_at.get(organization_id, 0):
                return False
            if not self.lease.trusted():
                return False
            if len(self._entries) >= self.max_entries:
                self._drop_all()
            self._entries[key_id] = Entry(organization_id, self.clock(), state)
            self._by_organization.setdefault(organization_id, set()).add(key_id)
            self._organizations[key_id] = organization_id
        return True

    def forget(self, key_id: str) -> None:
        with self._lock:
            entry = self._entries.pop(key_id, None)
            if entry is not None:
                self._by_organization.get(entry.organization_id, set()).discard(key_id)

    def note_use(self, key_id: str, when: Any, address: str | None) -> None:
        """Record in the cached copy that the database now holds this last use."""
        entry = self._entries.get(key_id)
        if entry is not None:
            entry.state.key.last_used_at = when
            entry.state.key.last_used_ip = address

    def drop_organization(self, organization_id: int) -> None:
        """Drop what is cached about the organisation's keys (an unknown one drops nothing)."""
        with self._lock:
            self._sequence += 1
            if len(self._invalidated_at) >= self.max_invalidated:
                self._drop_all()
            else:
                self._invalidated_at[organization_id] = self._sequence
            for key_id in self._by_organization.pop(organization_id, ()):
                self._entries.pop(key_id, None)

    def clear(self) -> None:
        """Drop everything cached: a new lease, a lost one, tests."""
        with self._lock:
            self._sequence += 1
            self._drop_all()
            self._organizations.clear()

    def _drop_all(self) -> None:
        self._emptied_at = self._sequence
        self._invalidated_at.clear()
        self._entries.clear()
        self._by_organization.clear()


verified_keys = VerifiedKeyCache()


# Invalidation.

_publishers: dict[int, Publisher] = {}
# Organisations whose invalidation could not be published; published once Redis answers.
_missed_invalidations: set[int] = set()


def _publisher() -> Publisher | None:
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    publisher = _publishers.get(id(backend))
    if publisher is None or publisher.bus.registry != backend.make_key("keyward:leases"):
        from apikeys.leases import Bus

        publisher = _publishers[id(backend)] = Publisher(Bus(backend))
    return publisher


def retry_missed_invalidations() -> None:
    """Publish what could not be published earlier (nobody waits for it any more)."""
    publisher = _publisher()
    while publisher is not None and _missed_invalidations:
        organization_id = _missed_invalidations.pop()
        try:
            publisher.publish(organization_id)
        except Exception:
            _missed_invalidations.add(organization_id)
            raise


def _retry_quietly() -> None:
    if _missed_invalidations:
        with contextlib.suppress(Exception):  # the next renewal tries again
            retry_missed_invalidations()


def invalidate_organization(organization_id: int) -> None:
    """Make every process drop what it cached about the organisation's keys; wait for it.

    Returns once every process with a live lease has acknowledged, or its lease ran
    out. If Redis cannot be reached it keeps trying for one lease time (by then a
    process that cannot reach it either has stopped trusting its cache), then
    logs an error, and publishes later, once Redis answers.
    """
    verified_keys.drop_organization(organization_id)
    publisher = _publisher()
    if publisher is None:
        return  # local memory: this process is the only one; another shared cache: none trusts
    give_up = time.monotonic() + lease_seconds()
    while True:
        try:
            retry_missed_invalidations()
            publisher.publish_and_wait(organization_id)
            return
        except Exception as error:
            if time.monotonic() >= give_up:
                _missed_invalidations.add(organization_id)
                logger.error(
                    "Redis unreachable (%s): could not confirm the invalidation of organisation "
                    "%s's cached keys; publishing it once Redis answers.",
                    type(error).__name__,
                    organization_id,
                )
                return
            time.sleep(0.05)


def invalidate_when_committed(organization_id: int) -> None:
    """Drop the organisation's entries now, and invalidate everywhere once the caller commits.

    The drop now makes the change visible at once to code that runs inside the
    same transaction; the invalidation after the commit is the one other
    processes need, and the one that retires a load that read the old row
    between the two.
    """
    verified_keys.drop_organization(organization_id)
    transaction.on_commit(lambda: invalidate_organization(organization_id))


def clear_shared_cache_for_tests() -> None:
    """Empty the default cache between tests, keeping this process's lease.

    Tests only: the test process is the only lease holder on its Redis database,
    so nothing can hold a lease that the flush loses, and no change needs to wait
    one out: the registry is put back as old, with this process's lease in it.
    """
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        backend.clear()
        return
    with verified_keys.lease.renewing:
        backend.clear()
        verified_keys.lease.adopt_registry()
    deadline = time.monotonic() + 5  # the first test of a run waits for the first lease
    while not verified_keys.trusted() and time.monotonic() < deadline:
        time.sleep(0.005)
