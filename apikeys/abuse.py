"""Brute-force defence: a client address that presents too many invalid keys waits.

The rule (docs/README-usage.md): more than 20 invalid keys within a minute from one address earn
`429 rate_limited` for its further invalid attempts, while valid keys from the
same address keep working (authentication only asks this module after a key
was refused, so a valid key never pays for it). "Within a minute" is a sliding
window, estimated from this minute's and the previous minute's counters in the
shared cache, so an attacker cannot fit 40 attempts around a minute boundary.
An IPv6 client is counted by its /64 network, which one host usually owns whole.

For operators, each process also tallies failures per address and minute and
writes them to `FailedKeyAttempts` once the minute is over (and at shutdown):
at most one row write per address per minute per process, whatever the rate of
attempts, and a record that `manage.py topoffenders` can read whatever cache is
configured (a local-memory cache is invisible to a management command).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from django.core.cache import cache as default_cache
from django.db import connection, transaction

from apikeys.counters import backend_of, incr_commands, incr_with_ttl, redis_client
from apikeys.models import FailedKeyAttempts

logger = logging.getLogger("keyward.abuse")

OTHER_ADDRESSES = "(other addresses)"
RETENTION = timedelta(days=7)


def offender_of(address: str | None) -> str | None:
    """Return what failures are counted against: the IPv4 address, or the IPv6 /64."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def seconds_until_allowed(
    previous: int, current: int, elapsed: float, period: int, limit: int
) -> int:
    """Return when the sliding estimate falls back to `limit`, if no failure comes meanwhile."""
    if current <= limit and previous:
        # Still inside this window: the previous window's weight fades linearly.
        wait = period - elapsed - (limit - current) * period / previous
    else:
        # Only in the next window: this window's count becomes the fading one.
        wait = period - elapsed + period * (1 - limit / max(current, 1))
    return max(1, math.ceil(wait))


class InvalidKeyGuard:
    """Count invalid keys per address; say how long an address over the limit must wait.

    With Redis nothing waits on it: each process counts in its own memory and a
    background thread sends the counts every `KEYWARD_COUNTER_SEND_SECONDS`,
    bringing back the shared totals. A process decides from the shared totals it
    last heard plus what it has not sent yet, so the shared limit holds once the
    counts have met in Redis; until then each process refuses on its own count,
    so an address gets at most 20 invalid keys past the limit per process, within
    one send interval. With another cache the count is the cache's, at once.
    """

    limit = 20
    period = 60
    cache = default_cache
    clock = staticmethod(time.time)
    cache_format = "keyward:badkeys:{address}:{window}"
    max_addresses = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unsent: Counter[tuple[str, int]] = Counter()  # (offender, window) → count
        self._heard: dict[tuple[str, int], int] = {}  # (offender, window) → shared total

    def failed(self, address: str | None) -> int | None:
        """Record an invalid key from `address`; over the limit, return the seconds to wait."""
        offender = offender_of(address)
        if offender is None:
            return None
        now = self.clock()
        failed_attempts.record(offender, now)
        window = int(now // self.period)
        if redis_client(self.cache) is not None:
            current, previous = self._count_here(offender, window)
        else:
            try:
                current = incr_with_ttl(self.cache, self._name(offender, window), 2 * self.period)
                previous = int(self.cache.get(self._name(offender, window - 1)) or 0)
            except Exception:  # the shared cache is down: authentication goes on without it
                logger.warning("Shared cache unreachable; invalid keys are not being counted.")
                return None
        elapsed = now - window * self.period
        estimate = previous * (self.period - elapsed) / self.period + current
        if estimate <= self.limit:
            return None
        return seconds_until_allowed(previous, current, elapsed, self.period, self.limit)

    def _name(self, offender: str, window: int) -> str:
        return self.cache_format.format(address=offender, window=window)

    def _count_here(self, offender: str, window: int) -> tuple[int, int]:
        """Count one failure in this process; return this and the previous window's totals."""
        with self._lock:
            if (offender, window) not in self._unsent and len(self._unsent) >= self.max_addresses:
                self._unsent.clear()  # a flood of addresses costs counts, not memory
            self._unsent[(offender, window)] += 1
            current = self._heard.get((offender, window), 0) + self._unsent[(offender, window)]
            previous = self._heard.get((offender, window - 1), 0) + self._unsent.get(
                (offender, window - 1), 0
            )
        return current, previous

    def send(self) -> int:
        """Send this process's counts to Redis and hear back the totals (background)."""
        client = redis_client(self.cache)
        if client is None:
            return 0
        with self._lock:
            unsent, self._unsent = self._unsent, Counter()
            window = int(self.clock() // self.period)
            self._heard = {k: v for k, v in self._heard.items() if k[1] >= window - 1}
            for offender, heard_window in self._heard:  # hear again what others added
                if heard_window == window:
                    unsent[(offender, window)] += 0
        if not unsent:
            return 0
        backend = backend_of(self.cache)
        pipe = client.pipeline(transaction=False)
        for (offender, sent_window), amount in unsent.items():
            for command in incr_commands(
                backend, self._name(offender, sent_window), 2 * self.period, amount
            ):
                pipe.execute_command(*command)
            pipe.get(backend.make_and_validate_key(self._name(offender, sent_window - 1)))
        try:
            replies = pipe.execute()
        except Exception:
            logger.warning("Shared cache unreachable; invalid keys stay counted in this process.")
            with self._lock:
                self._unsent.update(unsent)
            return 0
        with self._lock:
            for index, (offender, sent_window) in enumerate(unsent):
                total, previous = replies[3 * index], replies[3 * index + 2]
                self._heard[(offender, sent_window)] = int(total)
                self._heard[(offender, sent_window - 1)] = max(
                    self._heard.get((offender, sent_window - 1), 0), int(previous or 0)
                )
        return sum(unsent.values())

    def discard(self) -> None:
        """Forget what this process counted and heard (tests start clean with it)."""
        with self._lock:
            self._unsent.clear()
            self._heard.clear()


def _upsert_attempts_sql() -> str:
    table = connection.ops.quote_name(FailedKeyAttempts._meta.db_table)
    count = connection.ops.quote_name("count")
    return (
        f"INSERT INTO {table} (address, minute, {count}) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (address, minute) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )


@transaction.atomic
def failed_key_attempts_add(*, counts: Mapping[tuple[str, datetime], int]) -> None:
    """Add invalid-key counts, keyed by (address, minute), to the operators' record."""
    rows = [
        (address, connection.ops.adapt_datetimefield_value(minute), amount)
        for (address, minute), amount in sorted(counts.items())
        if amount
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_attempts_sql(), rows)


class FailedAttemptLog:
    """Tally invalid keys per address and minute in this process; write finished minutes."""

    max_addresses = 10_000
    clock = staticmethod(time.time)
    prune_every = 3600.0

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def record(self, address: str, now: float) -> None:
        """Count one invalid key from `address` at `now`."""
        minute = int(now // 60)
        with self._lock:
            if (address, minute) not in self._counts and len(self._counts) >= self.max_addresses:
                address = OTHER_ADDRESSES  # a flood of addresses costs rows, not memory
            self._counts[(address, minute)] += 1

    def flush(self, everything: bool = False) -> int:
        """Write the minutes that are over (all of them when `everything`); return how many."""
        current = int(self.clock() // 60)
        with self._lock:
            done = {k: v for k, v in self._counts.items() if everything or k[1] < current}
            for k in done:
                del self._counts[k]
        if done:
            counts = {
                (address, datetime.fromtimestamp(minute * 60, tz=UTC)): amount
                for (address, minute), amount in done.items()
            }
            try:
                failed_key_attempts_add(counts=counts)
            except Exception:
                logger.exception("Could not write failed key attempts; keeping them.")
                with self._lock:
                    self._counts.update(done)
                return 0
        self._prune()
        return sum(done.values())

    def _prune(self) -> None:
        now = self.clock()
        if now - self._pruned_at < self.prune_every:
            return
        self._pruned_at = now
        cutoff = datetime.fromtimestamp(now, tz=UTC) - RETENTION
        FailedKeyAttempts.objects.filter(minute__lt=cutoff).delete()

    def discard(self) -> None:
        """Forget what this process tallied (tests start clean with it)."""
        with self._lock:
            self._counts.clear()


failed_attempts = FailedAttemptLog()
