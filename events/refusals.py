"""The invalid-key spike's counts: refusals of known keys, tallied in memory, written in batches.

Authentication tells `apikeys.refusals` about each refused known key; this tally,
registered there by EventsConfig.ready(), adds one to an in-process counter per
(organisation, key, minute) — no query, no write, no round trip on the request. A
background thread writes the counters every `KEYWARD_USAGE_FLUSH_SECONDS` (with
atomic upserts, so several processes add up) and at exit; the spike job reads them
(events/jobs.py). A process killed hard loses at most its last few seconds of counts,
which only delays a spike's detection.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from events.models import KeyRefusalCount
from orgs.models import Organization

logger = logging.getLogger("keyward.refusals")

MAX_KEYS = 10_000
OTHER_KEYS = "(others)"


def _upsert_sql() -> str:
    table = connection.ops.quote_name(KeyRefusalCount._meta.db_table)
    orgs = connection.ops.quote_name(Organization._meta.db_table)
    count = connection.ops.quote_name("count")
    # INSERT … SELECT skips an organisation deleted meanwhile; ON CONFLICT adds up.
    return (
        f"INSERT INTO {table} (organization_id, key_id, minute, {count}) "  # noqa: S608
        f"SELECT id, %s, %s, %s FROM {orgs} WHERE id = %s "
        "ON CONFLICT (organization_id, key_id, minute) "
        f"DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )


@transaction.atomic
def key_refusals_add(*, counts: dict[tuple[int, str, int], int]) -> None:
    """Add refusal counts keyed by (organisation id, key id, Unix minute)."""
    rows = [
        (
            key_id[:12],
            connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(minute * 60, tz=UTC)),
            amount,
            organization_id,
        )
        for (organization_id, key_id, minute), amount in sorted(counts.items())
        if amount
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_sql(), rows)


class RefusalTally:
    """Count refusals of known keys per organisation, key and minute, in this process."""

    clock = staticmethod(time.time)

    def __init__(self) -> None:
        self._counts: Counter[tuple[int, str, int]] = Counter()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()

    def record(self, organization_id: int, key_id: str, code: str = "") -> None:
        """Count one refusal (the listener apikeys.refusals calls)."""
        self._ensure_flushing()
        slot = (organization_id, key_id, int(self.clock() // 60))
        with self._lock:
            if slot not in self._counts and len(self._counts) >= MAX_KEYS:
                slot = (organization_id, OTHER_KEYS[:12], slot[2])
            self._counts[slot] += 1

    def pending(self) -> Counter[tuple[int, str, int]]:
        with self._lock:
            return Counter(self._counts)

    def flush(self) -> int:
        """Write what was counted; return how many refusals that was."""
        with self._lock:
            taken, self._counts = self._counts, Counter()
        if not taken:
            return 0
        try:
            key_refusals_add(counts=dict(taken))
        except Exception:
            logger.exception("Could not write key refusal counts; keeping them.")
            with self._lock:
                self._counts.update(taken)
            return 0
        return sum(taken.values())

    def discard(self) -> None:
        with self._lock:
            self._counts.clear()

    def _ensure_flushing(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            interval = float(getattr(settings, "KEYWARD_USAGE_FLUSH_SECONDS", 2.0))
            if interval <= 0:
                return
            atexit.register(self.flush)
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(interval,), name="keyward-refusal-flush", daemon=True
            )
            thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()
            close_old_connections()


tally = RefusalTally()
