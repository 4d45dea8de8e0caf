"""Fanning events out to endpoints, and sending each delivery's attempts.

What happens next is decided by the delivery row alone (docs/README-events.md):

- An attempt starts with a claim: one conditional UPDATE that moves `attempt_count`
  from n to n+1 and takes a lease, only if the delivery is pending, due, and nobody
  holds a lease. Exactly one worker wins attempt n+1, however many tasks or workers
  try (a task may be queued twice: the sweep re-enqueues what looks dropped). The
  attempt's row is inserted in the same transaction, unique per (delivery, number).
- The POST goes out after the commit, with the lease as its time limit.
- The result is written only while the attempt is still the delivery's current one
  (`attempt_count == n`, the fencing token), then the next attempt is scheduled
  (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, with ±10% jitter, or later
  if a 429 or 503 says `Retry-After`) and queued with `run_after`.
- A worker killed mid-POST leaves its lease to expire; the sweep queues the delivery
  again and the next claim marks the lost attempt interrupted. The receiver may have
  seen it: delivery is at least once, and the `webhook-id` never changes.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from events import addresses, sealing, signing
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.outbox import make_id
from events.services import enqueue_delivery, webhook_endpoint_disable
from events.transport import Answer, transport

logger = logging.getLogger("keyward.webhooks")

RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_RETRY_AFTER = timedelta(hours=24)
FAILING_DAYS = 5


def timeout() -> float:
    return float(getattr(settings, "KEYWARD_WEBHOOK_TIMEOUT", 15.0))


def lease_length() -> timedelta:
    """How long a claimed attempt is a worker's: twice the attempt's deadline, and a margin."""
    return timedelta(seconds=2 * timeout() + 5)


@transaction.atomic
def event_dispatch(*, event_id: str) -> list[str]:
    """Create the deliveries of an event to every endpoint subscribed when it happened."""
    event = Event.objects.select_for_update().filter(pk=event_id).first()
    if event is None or event.dispatched_at is not None:
        return []
    now = timezone.now()
    endpoints = WebhookEndpoint.objects.filter(
        organization_id=event.organization_id, enabled=True, created_at__lte=event.created_at
    )
    made = []
    for endpoint in endpoints:
        if not endpoint.wants(event.type):
            continue
        delivery = WebhookDelivery(
            id=make_id("whd", 16),
            organization_id=event.organization_id,
            event=event,
            endpoint=endpoint,
            next_attempt_at=now,
        )
        try:
            with transaction.atomic():
                delivery.save(force_insert=True)
        except IntegrityError:  # dispatched before, by a worker that died before marking it
            continue
        made.append(delivery.pk)
    event.dispatched_at = now
    event.save(update_fields=["dispatched_at"])
    for delivery_id in made:
        transaction.on_commit(lambda d=delivery_id: enqueue_delivery(d))
    return made


@dataclass
class Claimed:
    delivery: WebhookDelivery
    attempt: WebhookAttempt


class Deliverer:
    """Send deliveries' attempts. Collaborators are attributes so that tests can swap them."""

    transport = transport
    retry_delays = RETRY_DELAYS
    jitter = 0.1
    random = random.Random()  # noqa: S311 (spreading retries, not a secret)
    clock = staticmethod(timezone.now)

    def claim(self, delivery_id: str) -> Claimed | None:
        """Take the delivery's next attempt, or return None if it is not this worker's to send."""
        now = self.clock()
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        with transaction.atomic():
            won = WebhookDelivery.objects.filter(
                free, due, pk=delivery_id, state=WebhookDelivery.State.PENDING
            ).update(attempt_count=F("attempt_count") + 1, lease_until=now + lease_length())
            if not won:
                return None
            delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(
                pk=delivery_id
            )
            WebhookAttempt.objects.filter(
                delivery=delivery, outcome=WebhookAttempt.Outcome.SENDING
            ).update(
                outcome=WebhookAttempt.Outcome.INTERRUPTED,
                error="The worker stopped during this attempt; it is retried.",
            )
            attempt = WebhookAttempt.objects.create(
                delivery=delivery, number=delivery.attempt_count, started_at=now
            )
        return Claimed(delivery, attempt)

    def deliver(self, delivery_id: str) -> str:
        """Send the delivery's next attempt if it is due and free; return what became of it."""
        claimed = self.claim(delivery_id)
        if claimed is None:
            return "not claimed"
        delivery, attempt = claimed.delivery, claimed.attempt
        endpoint = delivery.endpoint
        if not endpoint.enabled and not delivery.manual:
            answer = Answer(error="The endpoint is disabled.")
            return self.finish(delivery, attempt, answer, cancel=True)
        try:
            answer = self.send(delivery.event, endpoint, attempt)
        except Exception as exc:  # a bug here must not leave the lease to run out silently
            logger.exception("Delivery %s failed unexpectedly.", delivery_id)
            answer = Answer(error=f"internal error ({type(exc).__name__})")
        return self.finish(delivery, attempt, answer)

    def secrets_in_force(self, endpoint: WebhookEndpoint, now: datetime) -> list[bytes]:
        """Return the endpoint's secret, and its previous one during the rotation overlap."""
        current, fresh = sealing.unseal(endpoint.secret_sealed, context=endpoint.pk)
        if not fresh:
            _reseal(endpoint, current)
        found = [current]
        if (
            endpoint.previous_secret_sealed
            and endpoint.previous_secret_until
            and endpoint.previous_secret_until > now
        ):
            previous, _ = sealing.unseal(endpoint.previous_secret_sealed, context=endpoint.pk)
            found.append(previous)
        return found

    def send(self, event: Event, endpoint: WebhookEndpoint, attempt: WebhookAttempt) -> Answer:
        try:
            destination = addresses.parse_url(endpoint.url)
        except Exception:
            return Answer(error="The endpoint's URL is no longer valid.")
        try:
            secrets = self.secrets_in_force(endpoint, self.clock())
        except sealing.SealError as exc:
            return Answer(error=str(exc)[:300])
        body = event.body.encode()
        headers = signing.headers(secrets, event.pk, int(time.time()), body)
        return self.transport.post(destination, body, headers, timeout())

    def next_attempt(self, delivery: WebhookDelivery, answer: Answer) -> datetime | None:
        """Return when to try again, or None when the delivery has had its last attempt."""
        if delivery.manual:
            return None
        retries_done = delivery.attempt_count - 1
        if retries_done >= len(self.retry_delays):
            return None
        delay = self.retry_delays[retries_done]
        delay *= 1 + self.random.uniform(-self.jitter, self.jitter)
        if answer.status in (429, 503):
            wait = retry_after(answer.header("retry-after"), self.clock())
            if wait is not None:
                delay = max(delay, min(wait, MAX_RETRY_AFTER))
        return self.clock() + delay

    def finish(
        self,
        delivery: WebhookDelivery,
        attempt: WebhookAttempt,
        answer: Answer,
        cancel: bool = False,
    ) -> str:
        """Record the attempt and move the delivery on, if the attempt is still its current one."""
        now = self.clock()
        delivered = answer.delivered and not cancel
        outcome = WebhookAttempt.Outcome.DELIVERED if delivered else WebhookAttempt.Outcome.FAILED
        error = answer.error
        if not delivered and not error and answer.status is not None:
            error = f"answered {answer.status}"
        gone = answer.status == 410 and not cancel
        if delivered:
            state, next_at = WebhookDelivery.State.DELIVERED, None
        elif cancel:
            state, next_at = WebhookDelivery.State.CANCELED, None
        elif gone:
            state, next_at = WebhookDelivery.State.FAILED, None
        else:
            next_at = self.next_attempt(delivery, answer)
            state = WebhookDelivery.State.PENDING if next_at else WebhookDelivery.State.FAILED
        with transaction.atomic():
            current = WebhookDelivery.objects.filter(
                pk=delivery.pk, attempt_count=attempt.number
            ).update(
                state=state,
                next_attempt_at=next_at,
                lease_until=None,
                finished_at=None if state == WebhookDelivery.State.PENDING else now,
            )
            WebhookAttempt.objects.filter(pk=attempt.pk).update(
                outcome=outcome if current else WebhookAttempt.Outcome.INTERRUPTED,
                status_code=answer.status,
                latency_ms=answer.latency_ms,
                error=(error if current else "Finished after another worker took over.")[:300],
                response_excerpt=answer.excerpt,
                address=answer.address[:64],
            )
            if not current:
                return "superseded"
            if not cancel:
                _note_health(delivery.endpoint_id, delivered, now)
            if next_at is not None:
                transaction.on_commit(lambda: enqueue_delivery(delivery.pk, run_after=next_at))
        if gone:
            webhook_endpoint_disable(
                endpoint=delivery.endpoint,
                reason=WebhookEndpoint.DisabledReason.GONE,
                detail="The receiver answered 410 Gone.",
            )
        return state


def _note_health(endpoint_id: str, delivered: bool, now: datetime) -> None:
    """Start or end the endpoint's run of failures (5 days of it disables the endpoint)."""
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint_id)
    if delivered:
        endpoints.exclude(failing_since=None).update(failing_since=None)
    else:
        endpoints.filter(failing_since=None).update(failing_since=now)


def _reseal(endpoint: WebhookEndpoint, secret: bytes) -> None:
    """Re-encrypt a secret still sealed under a SECRET_KEY fallback with the current key."""
    fields = {"secret_sealed": sealing.seal(secret, context=endpoint.pk)}
    if endpoint.previous_secret_sealed and not sealing.is_current(endpoint.previous_secret_sealed):
        previous, _ = sealing.unseal(endpoint.previous_secret_sealed, context=endpoint.pk)
        fields["previous_secret_sealed"] = sealing.seal(previous, context=endpoint.pk)
    WebhookEndpoint.objects.filter(pk=endpoint.pk, secret_sealed=endpoint.secret_sealed).update(
        **fields
    )


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Return the wait a `Retry-After` header asks for (seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=min(int(value), int(MAX_RETRY_AFTER.total_seconds())))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(timedelta(0), when - now)


deliverer = Deliverer()


def reseal_all() -> int:
    """Re-seal every secret still sealed under a SECRET_KEY fallback; return how many."""
    count = 0
    for endpoint in WebhookEndpoint.objects.all().iterator():
        stale = not sealing.is_current(endpoint.secret_sealed) or (
            endpoint.previous_secret_sealed
            and not sealing.is_current(endpoint.previous_secret_sealed)
        )
        if not stale:
            continue
        try:
            secret, _ = sealing.unseal(endpoint.secret_sealed, context=endpoint.pk)
            _reseal(endpoint, secret)
            count += 1
        except sealing.SealError:
            logger.error("Endpoint %s has a secret no configured key opens.", endpoint.pk)
    return count
