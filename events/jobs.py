"""Periodic work, run once per period however many workers run, surviving their restarts.

Each worker's scheduler (events/scheduler.py) wakes every few seconds and, for each
job whose period has begun, tries to insert the row (job, period start) into
`JobRun`. The unique constraint lets exactly one insert through, across every worker
on every machine; that worker queues the job as a task. The schedule is the clock
and the table, nothing in memory, so a restarted worker simply carries on (a period
in which every worker was down is skipped; each job catches up on what it finds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from apikeys.models import APIKey
from events.delivery import FAILING_DAYS, reseal_all
from events.models import (
    Event,
    JobRun,
    KeyRefusalCount,
    Notice,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from events.notices import enqueue_notice, notice_create
from events.outbox import event_record
from events.services import enqueue_delivery, key_event_data, webhook_endpoint_disable
from orgs.models import Organization

logger = logging.getLogger("keyward.jobs")

RETENTION = timedelta(days=30)
BATCH = 500
SPIKE_LIMIT = 20
SPIKE_WINDOW = timedelta(minutes=10)
SPIKE_INTERVAL = timedelta(hours=1)
EXPIRED_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class Threshold:
    """An `api_key.expiring` notice: how long before the end, and for which keys."""

    slot: str
    before: timedelta
    in_words: str
    rotation: bool  # the end of a rotation's grace period, rather than a key's own expiry


# Each window runs from `before` the end to the next smaller threshold, so a key gets
# the most urgent notice that applies, never two at once after an outage.
EXPIRING = (
    Threshold("7d", timedelta(days=7), "in 7 days", rotation=False),
    Threshold("1d", timedelta(days=1), "in 1 day", rotation=False),
    Threshold("1h", timedelta(hours=1), "in 1 hour", rotation=True),
)


def _sweep_seconds() -> int:
    return max(1, int(getattr(settings, "KEYWARD_SWEEP_SECONDS", 60)))


def sweep() -> dict[str, int]:
    """Queue again what a dead worker dropped: events, deliveries and notices left behind."""
    now = timezone.now()
    overdue = now - timedelta(seconds=2 * _sweep_seconds())
    recently = now - timedelta(seconds=5 * _sweep_seconds())
    not_recently_swept = Q(swept_at__isnull=True) | Q(swept_at__lt=recently)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)

    events = list(
        Event.objects.filter(not_recently_swept, dispatched_at__isnull=True)
        .filter(created_at__lt=overdue)
        .values_list("pk", flat=True)[:BATCH]
    )
    Event.objects.filter(pk__in=events).update(swept_at=now)
    # A lease that ran out means a worker took an attempt and died; a delivery due for a
    # while with no lease at all means its task was never queued (or was lost).
    abandoned = Q(lease_until__lt=now)
    never_queued = Q(lease_until__isnull=True) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=overdue)
    )
    deliveries = list(
        WebhookDelivery.objects.filter(not_recently_swept, state=WebhookDelivery.State.PENDING)
        .filter(abandoned | never_queued)
        .values_list("pk", flat=True)[:BATCH]
    )
    WebhookDelivery.objects.filter(pk__in=deliveries).update(swept_at=now)
    notices = list(
        Notice.objects.filter(
            free, not_recently_swept, state=Notice.State.PENDING, created_at__lt=overdue
        ).values_list("pk", flat=True)[:BATCH]
    )
    Notice.objects.filter(pk__in=notices).update(swept_at=now)

    from events.tasks import dispatch_event

    for event_id in events:
        dispatch_event.enqueue(event_id)
    for delivery_id in deliveries:
        enqueue_delivery(delivery_id)
    for notice_id in notices:
        enqueue_notice(notice_id)
    return {"events": len(events), "deliveries": len(deliveries), "notices": len(notices)}


def _announce(key: APIKey, kind: str, slot: str, extra: dict[str, Any], **words: str) -> bool:
    """Raise a key event and its notice once per key and threshold; False if done before."""
    with transaction.atomic():
        data = key_event_data(key, **extra)
        notice = notice_create(
            organization=key.organization,
            kind=kind,
            subject=key.pk,
            slot=slot,
            context={
                **extra,
                **words,
                "key": data["key"],
                "expires_display": f"{key.expires_at:%-d %b %Y, %H:%M} UTC",
                "key_path": f"/orgs/{key.organization.slug}/settings/api-keys/{key.pk}/",
            },
        )
        if notice is None:
            return False
        event_record(organization=key.organization, type=kind, data=data, key_id=key.pk)
    return True


def _unannounced(kind: str, slot: str):
    return ~Exists(Notice.objects.filter(kind=kind, subject=OuterRef("pk"), slot=slot))


def key_notices() -> dict[str, int]:
    """Announce keys about to stop working, and keys that just did."""
    now = timezone.now()
    sent: dict[str, int] = {}
    live = APIKey.objects.filter(revoked_at__isnull=True).select_related("organization", "owner")
    for position, threshold in enumerate(EXPIRING):
        smaller = [t.before for t in EXPIRING[position + 1 :] if t.rotation == threshold.rotation]
        window_end = now + threshold.before
        keys = live.filter(expires_at__gt=now, expires_at__lte=window_end)
        if smaller:
            keys = keys.filter(expires_at__gt=now + max(smaller))
        if threshold.rotation:
            # Only a grace period that began before this threshold was crossed.
            keys = keys.filter(
                replaced_by__isnull=False,
                replaced_by__created_at__lt=F("expires_at") - threshold.before,
            )
        else:
            keys = keys.filter(
                replaced_by__isnull=True, created_at__lt=F("expires_at") - threshold.before
            )
        keys = keys.filter(_unannounced("api_key.expiring", threshold.slot))
        count = 0
        for key in keys.order_by("expires_at")[:BATCH]:
            extra = {
                "expires_at": key.expires_at.isoformat().replace("+00:00", "Z"),
                "threshold": threshold.slot,
                "reason": "rotation_grace" if threshold.rotation else "expiry",
            }
            count += _announce(
                key, "api_key.expiring", threshold.slot, extra, in_words=threshold.in_words
            )
        sent[f"expiring_{threshold.slot}"] = count
    expired = live.filter(
        expires_at__lte=now, expires_at__gt=now - EXPIRED_LOOKBACK, created_at__lt=F("expires_at")
    ).filter(_unannounced("api_key.expired", "expired"))
    # A rotation with no grace period ends its old key at once: the rotation said so already.
    expired = expired.exclude(replaced_by__created_at__gte=F("expires_at") - timedelta(seconds=1))
    count = 0
    for key in expired.order_by("expires_at")[:BATCH]:
        extra = {"expires_at": key.expires_at.isoformat().replace("+00:00", "Z")}
        count += _announce(key, "api_key.expired", "expired", extra)
    sent["expired"] = count
    return sent


def invalid_key_spike() -> dict[str, int]:
    """Raise `security.invalid_key_spike` for organisations whose known keys are being refused."""
    now = timezone.now()
    # Ten one-minute buckets: this minute and the nine before it.
    since = now.replace(second=0, microsecond=0) - SPIKE_WINDOW + timedelta(minutes=1)
    totals = (
        KeyRefusalCount.objects.filter(minute__gte=since)
        .values("organization_id")
        .annotate(total=Sum("count"))
        .filter(total__gt=SPIKE_LIMIT)
    )
    raised = 0
    for row in totals:
        organization = Organization.objects.get(pk=row["organization_id"])
        recent = Notice.objects.filter(
            organization=organization,
            kind="security.invalid_key_spike",
            created_at__gt=now - SPIKE_INTERVAL,
        )
        if recent.exists():
            continue
        per_key = (
            KeyRefusalCount.objects.filter(organization=organization, minute__gte=since)
            .values("key_id")
            .annotate(refusals=Sum("count"))
            .order_by("-refusals", "key_id")[:10]
        )
        names = {
            k.pk: k
            for k in APIKey.objects.filter(pk__in=[r["key_id"] for r in per_key]).select_related(
                "organization"
            )
        }
        keys = [
            {
                "id": r["key_id"],
                "prefix": names[r["key_id"]].prefix if r["key_id"] in names else None,
                "name": names[r["key_id"]].name if r["key_id"] in names else None,
                "refusals": r["refusals"],
            }
            for r in per_key
        ]
        data = {
            "refusals": row["total"],
            "window_seconds": int(SPIKE_WINDOW.total_seconds()),
            "since": since.isoformat().replace("+00:00", "Z"),
            "until": now.isoformat().replace("+00:00", "Z"),
            "keys": keys,
        }
        hour = now.replace(minute=0, second=0, microsecond=0).isoformat()
        with transaction.atomic():
            notice = notice_create(
                organization=organization,
                kind="security.invalid_key_spike",
                subject=str(organization.pk),
                slot=hour,
                context=data,
            )
            if notice is None:
                continue
            event_record(
                organization=organization,
                type="security.invalid_key_spike",
                data={**data, "actor": {"type": "system", "id": None, "label": "keyward"}},
            )
        raised += 1
    return {"spikes": raised}


def endpoint_health() -> dict[str, int]:
    """Disable endpoints whose every delivery has failed for 5 days, and tell their owners."""
    cutoff = timezone.now() - timedelta(days=FAILING_DAYS)
    disabled = 0
    for endpoint in WebhookEndpoint.objects.filter(enabled=True, failing_since__lte=cutoff):
        if webhook_endpoint_disable(
            endpoint=endpoint,
            reason=WebhookEndpoint.DisabledReason.FAILING,
            detail=f"Every delivery failed for {FAILING_DAYS} days.",
        ):
            disabled += 1
    return {"disabled": disabled}


def prune() -> dict[str, int]:
    """Forget what is older than it needs to be: attempts after 30 days, and the like."""
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    old = now - RETENTION
    removed = {
        "attempts": WebhookAttempt.objects.filter(started_at__lt=old).delete()[0],
        "deliveries": WebhookDelivery.objects.filter(created_at__lt=old)
        .exclude(state=WebhookDelivery.State.PENDING)
        .delete()[0],
        "events": Event.objects.filter(created_at__lt=old, dispatched_at__isnull=False)
        .exclude(Exists(WebhookDelivery.objects.filter(event=OuterRef("pk"))))
        .delete()[0],
        "refusal_counts": KeyRefusalCount.objects.filter(
            minute__lt=now - timedelta(days=1)
        ).delete()[0],
        "job_runs": JobRun.objects.filter(period_start__lt=now - timedelta(days=2)).delete()[0],
        "notices": Notice.objects.filter(created_at__lt=now - 3 * RETENTION).delete()[0],
        # The queue's own rows: finished tasks after a week, and those a dead worker
        # left RUNNING (ours finish within a minute) after a day.
        "tasks": DBTaskResult.objects.finished()
        .filter(finished_at__lt=now - timedelta(days=7))
        .delete()[0]
        + DBTaskResult.objects.running().filter(started_at__lt=now - timedelta(days=1)).delete()[0],
        "resealed": reseal_all(),
    }
    return removed


@dataclass(frozen=True)
class Job:
    name: str
    every: Callable[[], timedelta]
    run: Callable[[], dict[str, int]]


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("sweep", lambda: timedelta(seconds=_sweep_seconds()), sweep),
        Job("key_notices", lambda: timedelta(minutes=1), key_notices),
        Job("invalid_key_spike", lambda: timedelta(minutes=1), invalid_key_spike),
        Job("endpoint_health", lambda: timedelta(minutes=10), endpoint_health),
        Job("prune", lambda: timedelta(hours=1), prune),
    )
}


def period_start(job: Job, now: datetime) -> datetime:
    """Return the start of the period `now` falls in (periods count from the Unix epoch)."""
    seconds = max(1, int(job.every().total_seconds()))
    return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=UTC)


def _claim_sql() -> str:
    table = connection.ops.quote_name(JobRun._meta.db_table)
    return (
        f"INSERT INTO {table} (job, period_start, claimed_at, worker, result) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job, period_start) DO NOTHING"
    )


def job_claim(*, job: str, start: datetime, worker: str = "") -> bool:
    """Claim one job's period; True for exactly one caller across all workers."""
    if JobRun.objects.filter(job=job, period_start=start).exists():
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(),
            [
                job,
                connection.ops.adapt_datetimefield_value(start),
                connection.ops.adapt_datetimefield_value(timezone.now()),
                worker[:64],
                "{}",
            ],
        )
        return cursor.rowcount == 1


def job_run(*, job: str, start: datetime | None = None) -> dict[str, int]:
    """Run a periodic job now and note its result on its period's row."""
    result = JOBS[job].run()
    if start is not None:
        JobRun.objects.filter(job=job, period_start=start).update(
            finished_at=timezone.now(), result=result
        )
    return result
