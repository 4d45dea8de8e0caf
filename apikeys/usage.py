"""Request counts per key and per UTC day, and last uses, gathered in the process.

A request costs no database write and no round trip: `UsageCounter.record`
adds one to a counter in this process's memory. A background thread per process
sends the counts every `KEYWARD_COUNTER_SEND_SECONDS` (a quarter of a second)
to one Redis hash that every process adds to, and writes the counters every
`KEYWARD_USAGE_FLUSH_SECONDS` with atomic increments, so no count is lost
however many requests run at once. Any process may flush the hash; a flush
renames it away in the same transaction that reads and deletes it, so two
processes never write the same counts. Without Redis each process writes its
own counts. `LastUseLog` does the same for `last_used_at`. docs/README-usage.md
says what a killed process can lose: its counts since its last send.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache as default_cache
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest

from apikeys.counters import current_pid, redis_client
from apikeys.models import APIKey, KeyUsageDay
from orgs.models import Organization

logger = logging.getLogger("keyward.usage")

# The braces are a Redis Cluster hash tag: the pending hash and its claimed copies
# share a slot, so RENAME works there too.
PENDING_KEY = "{keyward:usage}:pending"
CLAIMED_TTL = 3600


def utc_day(timestamp: float) -> date:
    """Return the UTC calendar day of a Unix timestamp."""
    return datetime.fromtimestamp(timestamp, tz=UTC).date()


def _upsert_days_sql() -> str:
    table = connection.ops.quote_name(KeyUsageDay._meta.db_table)
    keys = connection.ops.quote_name(APIKey._meta.db_table)
    count = connection.ops.quote_name("count")
    # INSERT … SELECT takes the organisation from the key, and skips a key that
    # does not exist; ON CONFLICT adds to the row in the same statement (PostgreSQL
    # and SQLite ≥ 3.24 share this syntax), so two flushes never lose an update.
    return (
        f"INSERT INTO {table} (organization_id, key_id, day, {count}) "  # noqa: S608
        f"SELECT organization_id, id, %s, %s FROM {keys} WHERE id = %s "
        f"ON CONFLICT (key_id, day) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )


@transaction.atomic
def api_key_usage_add(*, counts: Mapping[tuple[str, date], int]) -> None:
    """Add request counts, keyed by (key id, UTC day), to usage_count and the daily rows."""
    per_key: Counter[str] = Counter()
    for (key_id, _day), amount in counts.items():
        per_key[key_id] += amount
    # The organisations first, as every write in an organisation does (organization_lock):
    # the daily rows' foreign key makes PostgreSQL lock the organisation at COMMIT, and
    # taken then, while this holds key rows, it deadlocks with a service that holds the
    # organisation and waits for one of those keys (api_key_revoke). FOR NO KEY UPDATE
    # waits for organization_lock's FOR UPDATE, not for other writers' foreign keys.
    organization_ids = APIKey.objects.filter(pk__in=per_key).values("organization_id")
    list(
        Organization.objects.filter(pk__in=organization_ids)
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )
    # A fixed order keeps two concurrent flushes from locking rows in opposite orders.
    # A negative amount (a count given back after a flush took it) only lowers what is
    # there, never below zero.
    for key_id in sorted(per_key):
        APIKey.objects.filter(pk=key_id).update(
            usage_count=Greatest(F("usage_count") + per_key[key_id], 0)
        )
    rows = [
        (connection.ops.adapt_datefield_value(day), amount, key_id)
        for (key_id, day), amount in sorted(counts.items())
        if amount > 0
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_days_sql(), rows)
    for (key_id, day), amount in sorted(counts.items()):
        if amount < 0:
            KeyUsageDay.objects.filter(key_id=key_id, day=day).update(
                count=Greatest(F("count") + amount, 0)
            )


class UsageCounter:
    """Gather request counts per key and UTC day; write them to the database in batches."""

    cache = default_cache
    clock = staticmethod(time.time)
    pending_key = PENDING_KEY

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, date]] = Counter()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._day: tuple[float, float, date] = (0.0, 0.0, date.min)  # [start, end) and its day

    def record(self, key_id: str, amount: int = 1) -> None:
        """Count `amount` requests made with the key now, in this process: no wait."""
        flusher.ensure_started()
        now = self.clock()
        start, end, day = self._day
        if not start <= now < end:  # a new UTC day (or a clock a test moved)
            day = utc_day(now)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            self._day = (start, start + 86400, day)
        with self._lock:
            self._counts[(key_id, day)] += amount

    def send(self) -> int:
        """Move this process's counts into the shared Redis hash; return how many requests.

        With another cache, or when Redis does not answer, they stay here for the flush.
        """
        client = redis_client(self.cache)
        if client is None:
            return 0
        batch = self._take_local()
        if not batch:
            return 0
        pending = self._pending_name()
        try:
            pipe = client.pipeline(transaction=False)
            for (key_id, day), amount in batch.items():
                pipe.hincrby(pending, self._field(key_id, day), amount)
            pipe.execute()
        except Exception:
            logger.warning("Shared cache unreachable; usage stays in this process for now.")
            with self._lock:
                self._counts.update(batch)
            return 0
        return sum(batch.values())

    def pending(self) -> Counter[tuple[str, date]]:
        """Return what is gathered and not yet written (this process and the shared hash)."""
        with self._lock:
            counts = Counter(self._counts)
        client = redis_client(self.cache)
        if client is not None:
            counts.update(self._parse(client.hgetall(self._pending_name())))
        return counts

    def flush(self) -> int:
        """Write what was gathered to the database; return how many requests that was."""
        with self._flush_lock:
            batch = self._take_local()
            batch.update(self._take_shared())
            if not batch:
                return 0
            try:
                api_key_usage_add(counts=batch)
            except Exception:
                logger.exception("Could not write usage; keeping it for the next flush.")
                self._give_back(batch)
                return 0
            return sum(batch.values())

    def discard(self) -> None:
        """Forget everything gathered in this process (tests start clean with it)."""
        with self._lock:
            self._counts.clear()

    def _pending_name(self) -> str:
        return self.cache.make_and_validate_key(self.pending_key)

    @staticmethod
    def _field(key_id: str, day: date) -> str:
        return f"{key_id}|{day.isoformat()}"

    def _take_local(self) -> Counter[tuple[str, date]]:
        with self._lock:
            taken, self._counts = self._counts, Counter()
        return taken

    def _take_shared(self) -> Counter[tuple[str, date]]:
        """Claim the shared hash: rename, read and delete it in one MULTI/EXEC."""
        client = redis_client(self.cache)
        if client is None:
            return Counter()
        pending = self._pending_name()
        claimed = f"{pending}:claimed:{uuid.uuid4().hex}"
        pipe = client.pipeline(transaction=True)
        pipe.rename(pending, claimed)
        pipe.hgetall(claimed)
        pipe.delete(claimed)
        try:
            renamed, fields, _deleted = pipe.execute(raise_on_error=False)
        except Exception:
            logger.warning("Shared cache unreachable; usage stays there until the next flush.")
            return Counter()
        if isinstance(renamed, Exception):  # nothing pending ("no such key")
            return Counter()
        return self._parse(fields)

    @staticmethod
    def _parse(fields: Mapping[Any, Any]) -> Counter[tuple[str, date]]:
        counts: Counter[tuple[str, date]] = Counter()
        for field, value in fields.items():
            text = field.decode() if isinstance(field, bytes) else str(field)
            key_id, _, day = text.partition("|")
            try:
                counts[(key_id, date.fromisoformat(day))] += int(value)
            except ValueError:
                logger.warning("Ignoring a malformed usage counter %r.", text)
        return counts

    def _give_back(self, batch: Counter[tuple[str, date]]) -> None:
        client = redis_client(self.cache)
        if client is not None:
            try:
                pipe = client.pipeline(transaction=True)
                for (key_id, day), amount in batch.items():
                    pipe.hincrby(self._pending_name(), self._field(key_id, day), amount)
                pipe.execute()
                return
            except Exception:
                logger.warning("Shared cache unreachable; keeping unwritten usage in this process.")
        with self._lock:
            self._counts.update(batch)


class LastUseLog:
    """The last use of each key, gathered in the process and written with the usage flush.

    `last_used_at` moves on a key's first use and then at most once a minute
    (authentication decides when, from its cached copy); the write is a batch of
    conditional UPDATEs, so two processes never move it backwards.
    """

    refresh = timedelta(minutes=1)

    def __init__(self) -> None:
        self._uses: dict[str, tuple[datetime, str | None]] = {}
        self._lock = threading.Lock()

    def record(self, key_id: str, when: datetime, address: str | None) -> None:
        """Note a use of the key at `when` from `address`: no wait."""
        flusher.ensure_started()
        with self._lock:
            self._uses[key_id] = (when, address)

    def flush(self) -> int:
        """Write the last uses gathered; return how many keys."""
        with self._lock:
            uses, self._uses = self._uses, {}
        if not uses:
            return 0
        try:
            with transaction.atomic():
                for key_id, (when, address) in sorted(uses.items()):
                    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=when - self.refresh)
                    APIKey.objects.filter(stale, pk=key_id).update(
                        last_used_at=when, last_used_ip=address
                    )
        except Exception:
            logger.exception("Could not write last uses; keeping them for the next flush.")
            with self._lock:
                for key_id, use in uses.items():
                    self._uses.setdefault(key_id, use)
            return 0
        return len(uses)

    def discard(self) -> None:
        with self._lock:
            self._uses.clear()


class BackgroundFlusher:
    """Send and flush in one daemon thread per process, started lazily on first use.

    Every `send_interval` (`KEYWARD_COUNTER_SEND_SECONDS`) it runs the sends —
    what this process gathered goes to Redis, where every process sees it — and
    every `interval` (`KEYWARD_USAGE_FLUSH_SECONDS`) the flushes to the database.
    With an interval of 0 there is no thread: only a shutdown (or a test) flushes.
    """

    def __init__(self, flushes: list[Callable[[], Any]], sends: list[Callable[[], Any]]) -> None:
        self.flushes = flushes
        self.sends = sends
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return float(getattr(settings, "KEYWARD_USAGE_FLUSH_SECONDS", 2.0))

    @property
    def send_interval(self) -> float:
        return min(float(getattr(settings, "KEYWARD_COUNTER_SEND_SECONDS", 0.25)), self.interval)

    def ensure_started(self) -> None:
        """Start the thread on first use in this process (a forked worker starts its own)."""
        if self._pid == current_pid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            if self.interval <= 0:
                return
            atexit.register(flush_all)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="keyward-usage-flush", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        next_flush = time.monotonic() + self.interval
        while not self._stop.wait(self.send_interval):
            self.send_now()
            if time.monotonic() >= next_flush:
                self.flush_now()
                close_old_connections()
                next_flush = time.monotonic() + self.interval

    def send_now(self) -> None:
        """Run every send once; log, never raise."""
        self._run_all(self.sends, "A background send failed.")

    def flush_now(self) -> None:
        """Run every flush once; log, never raise (this runs in threads and at exit)."""
        self._run_all(self.flushes, "A background flush failed.")

    @staticmethod
    def _run_all(tasks: list[Callable[[], Any]], failure: str) -> None:
        for task in tasks:
            try:
                task()
            except Exception:
                logger.exception(failure)

    def stop(self) -> None:
        """Stop the thread (tests); the next use in this process starts another."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        self._pid = None


def _flush_failed_attempts() -> None:
    from apikeys.abuse import failed_attempts

    failed_attempts.flush()


def _flush_activity() -> None:
    from apikeys.activity import key_activity

    key_activity.flush()


def _send_invalid_keys() -> None:
    from apikeys.authentication import APIKeyAuthentication

    APIKeyAuthentication.invalid_key_guard.send()


def _keep_quota_budgets() -> None:
    from apikeys.throttling import quota_budgets

    quota_budgets.maintain()


def _keep_rate_slices() -> None:
    from apikeys.throttling import rate_slices

    rate_slices.maintain()


def flush_all() -> None:
    """Write every count this process holds or can claim, even this minute's; at shutdown."""
    from apikeys.abuse import failed_attempts
    from apikeys.throttling import quota_budgets, rate_slices

    final = BackgroundFlusher(
        [
            usage_counter.flush,
            last_uses.flush,
            lambda: failed_attempts.flush(everything=True),
            quota_budgets.give_back_all,
            rate_slices.give_back_all,
            _flush_activity,
        ],
        [_send_invalid_keys],
    )
    final.send_now()
    final.flush_now()


usage_counter = UsageCounter()
last_uses = LastUseLog()
flusher = BackgroundFlusher(
    [usage_counter.flush, last_uses.flush, _flush_failed_attempts, _flush_activity],
    [usage_counter.send, _send_invalid_keys, _keep_quota_budgets, _keep_rate_slices],
)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # Unwind the main thread so that atexit runs the last flush, outside any lock.
    raise SystemExit(128 + signum)


def install_shutdown_flush() -> None:
    """Flush at interpreter exit, and make SIGTERM a clean exit where nobody handles it.

    Called when a server loads the WSGI application: gunicorn workers keep their
    own SIGTERM handling (and flush in gunicorn.conf.py's worker_exit hook);
    `runserver --noreload` gets a SIGTERM that exits through atexit.
    """
    atexit.register(flush_all)
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
