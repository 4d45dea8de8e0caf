"""Key activity: per key and hour, which addresses called which routes, with what answer.

It answers "what did this key do while it was exposed?" (docs/leaks.md). A request
costs one counter update in memory (`KeyActivityCollector.record`, called by
`KeyResponseHeadersMiddleware` once the answer is known); the usage flusher writes
the gathered counts every few seconds and at a graceful stop (apikeys/usage.py), so
activity trails real time as usage does. Refused presentations of a known key (a
wrong secret, a revoked or expired key) are counted with their error code: an
attacker trying a leaked key shows up as plainly as its owner.

Bounds: at most 100 addresses per key and hour, the rest counted under "other",
held both in each process and, across processes, when the counts are written
(the key's row is locked while its hour's addresses are counted); rows older than
30 days are deleted by the writer, at most once an hour per process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection, transaction

from apikeys.models import APIKey, KeyActivity

logger = logging.getLogger("keyward.activity")

MAX_ADDRESSES = 100
RETENTION = timedelta(days=30)
PRUNE_EVERY = 3600
UNMATCHED_ROUTE = "(no route)"
ALLOWED = "allowed"

# The setting, read once per process rather than once per request; a test that changes
# it empties this (setting_changed).
_settings: dict[str, bool] = {}


def _forget_settings(*, setting: str, **kwargs) -> None:
    if setting == "KEYWARD_KEY_ACTIVITY":
        _settings.clear()


setting_changed.connect(_forget_settings)

# (key id, hour number since the epoch, address, route, outcome)
Entry = tuple[str, int, str, str, str]


@lru_cache(maxsize=512)
def route_pattern(route: str | None) -> str:
    """Return a URL pattern as people write it: `/api/v1/keys/{key_id}`, not `<str:key_id>`."""
    if route is None:
        return UNMATCHED_ROUTE
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    route = route.lstrip("^").rstrip("$")
    return "/" + route.lstrip("/")


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def _upsert_sql() -> str:
    table = connection.ops.quote_name(KeyActivity._meta.db_table)
    keys = connection.ops.quote_name(APIKey._meta.db_table)
    count = connection.ops.quote_name("count")
    return (
        f"INSERT INTO {table} (key_id, hour, address, route, outcome, {count}) "  # noqa: S608
        f"SELECT id, %s, %s, %s, %s, %s FROM {keys} WHERE id = %s "
        "ON CONFLICT (key_id, hour, address, route, outcome) "
        f"DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )


@transaction.atomic
def key_activity_add(*, counts: Counter[Entry]) -> None:
    """Add gathered activity counts, holding each key and hour to MAX_ADDRESSES addresses."""
    key_ids = sorted({entry[0] for entry in counts})
    hours = sorted({entry[1] for entry in counts})
    # Lock the keys (in one order) so that two processes' writers count one key's
    # addresses in turn; FOR NO KEY UPDATE does not wait for the organisation's lock.
    list(
        APIKey.objects.filter(pk__in=key_ids)
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    stored = (
        KeyActivity.objects.filter(key_id__in=key_ids, hour__in=[hour_start(h) for h in hours])
        .values_list("key_id", "hour", "address")
        .distinct()
    )
    for key_id, hour, address in stored:
        seen[(key_id, int(hour.timestamp()) // 3600)].add(address)
    merged: Counter[Entry] = Counter()
    for (key_id, hour, address, route, outcome), amount in sorted(counts.items()):
        addresses = seen[(key_id, hour)]
        if address not in addresses:
            if len(addresses - {KeyActivity.OTHER_ADDRESSES}) >= MAX_ADDRESSES:
                address = KeyActivity.OTHER_ADDRESSES
            addresses.add(address)
        merged[(key_id, hour, address, route, outcome)] += amount
    rows = [
        (
            connection.ops.adapt_datetimefield_value(hour_start(hour)),
            address,
            route,
            outcome,
            amount,
            key_id,
        )
        for (key_id, hour, address, route, outcome), amount in sorted(merged.items())
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_sql(), rows)


class KeyActivityCollector:
    """Gather activity in this process; write it in batches with the usage counts."""

    clock = staticmethod(time.time)
    max_addresses = MAX_ADDRESSES

    def __init__(self) -> None:
        self._counts: Counter[Entry] = Counter()
        self._addresses: dict[tuple[str, int], set[str]] = {}
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    @property
    def enabled(self) -> bool:
        found = _settings.get("enabled")
        if found is None:
            found = _settings["enabled"] = getattr(settings, "KEYWARD_KEY_ACTIVITY", True)
        return found

    def record(self, key_id: str, address: str | None, route: str | None, outcome: str) -> None:
        """Count one request made with (or refused for) the key `key_id`, now."""
        hour = int(self.clock()) // 3600
        address = address or "unknown"
        pattern = route_pattern(route)
        with self._lock:
            addresses = self._addresses.get((key_id, hour))
            if addresses is None:
                addresses = self._addresses[(key_id, hour)] = set()
            if address not in addresses:
                if len(addresses) >= self.max_addresses:
                    address = KeyActivity.OTHER_ADDRESSES
                else:
                    addresses.add(address)
            self._counts[(key_id, hour, address, pattern, outcome)] += 1

    def pending(self) -> Counter[Entry]:
        with self._lock:
            return Counter(self._counts)

    def flush(self) -> int:
        """Write what was gathered; return how many requests that was. Keep it on failure."""
        with self._lock:
            batch, self._counts, self._addresses = self._counts, Counter(), {}
        if batch:
            try:
                key_activity_add(counts=batch)
            except Exception:
                logger.exception("Could not write key activity; keeping it for the next flush.")
                with self._lock:
                    self._counts.update(batch)
                return 0
        self._prune()
        return sum(batch.values())

    def discard(self) -> None:
        """Forget everything gathered in this process (tests start clean with it)."""
        with self._lock:
            self._counts.clear()
            self._addresses.clear()

    def _prune(self) -> None:
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        cutoff = datetime.fromtimestamp(now, tz=UTC) - RETENTION
        KeyActivity.objects.filter(hour__lt=cutoff).delete()


key_activity = KeyActivityCollector()
