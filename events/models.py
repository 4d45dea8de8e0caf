"""Events out: the outbox, webhook endpoints and deliveries, notices and periodic jobs.

The rows are the truth the workers act on (docs/README-events.md): a delivery's state,
attempt count, next attempt time and lease say what must happen next, whichever worker
picks it up, so that a worker that dies loses nothing and two never send one attempt.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from audit.actors import Target


class Event(models.Model):
    """One thing that happened, written in the transaction of the change that caused it.

    `body` is the exact JSON sent to receivers and signed; its `id` is the
    `webhook-id` of every delivery and retry of it.
    """

    id = models.CharField(primary_key=True, max_length=32, editable=False)
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="+"
    )
    type = models.CharField(max_length=64)
    body = models.TextField()
    key_id = models.CharField(max_length=12, blank=True, help_text="The key it is about, if any.")
    endpoint = models.ForeignKey(
        "WebhookEndpoint",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Sent to this endpoint only (a test event); otherwise to every subscriber.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    swept_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="events_event_undispatched",
                condition=Q(dispatched_at__isnull=True),
            ),
            models.Index(fields=["organization", "-created_at"], name="events_event_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class WebhookEndpoint(models.Model):
    """A URL an organisation receives events at; only its sealed signing secret is kept."""

    class DisabledReason(models.TextChoices):
        NONE = "", "Enabled"
        MANUAL = "manual", "Turned off"
        GONE = "gone", "The receiver answered 410 Gone"
        FAILING = "failing", "Every delivery failed for 5 days"

    id = models.CharField(primary_key=True, max_length=24, editable=False)
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, blank=True, help_text="Event types; empty = all.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(
        max_length=16, choices=DisabledReason.choices, default="", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    created_by_label = models.CharField(max_length=254, blank=True)
    secret_sealed = models.TextField(editable=False)
    previous_secret_sealed = models.TextField(blank=True, editable=False)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="Start of an unbroken run of failed attempts."
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "created_at"], name="events_ep_org")]

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"

    @property
    def audit_target(self) -> Target:
        """Return how the audit log names this endpoint (never its secret)."""
        return Target("webhook_endpoint", self.id, self.url[:254])

    def wants(self, event_type: str) -> bool:
        """Return whether this endpoint subscribes to `event_type`."""
        return not self.events or event_type in self.events


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint: the retry schedule's state lives here."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    id = models.CharField(primary_key=True, max_length=24, editable=False)
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="+"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    manual = models.BooleanField(
        default=False, help_text="A test event or a redelivery: one attempt, no retries."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending the current attempt until then."
    )
    swept_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"],
                condition=Q(manual=False),
                name="events_delivery_once_per_endpoint",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "delivered", "failed", "canceled"]),
                name="events_delivery_state_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="events_dlv_endpoint_created"),
            models.Index(
                fields=["next_attempt_at"],
                name="events_dlv_pending_due",
                condition=Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.endpoint_id}: {self.state}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, to which address, the answer, and how long it took."""

    class Outcome(models.TextChoices):
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.TextField(blank=True, help_text="The first 1 KB of the answer.")
    address = models.CharField(max_length=64, blank=True, help_text="The address connected to.")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="events_attempt_once"),
        ]
        indexes = [models.Index(fields=["started_at"], name="events_attempt_started")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.outcome}"


class Notice(models.Model):
    """An email notice, recorded once per kind, subject and threshold however many workers run."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        SUPPRESSED = "suppressed", "Not sent: the organisation turned email notices off"
        NO_RECIPIENT = "no_recipient", "Not sent: nobody to send it to"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=64)
    subject = models.CharField(max_length=64, help_text="The key, endpoint or organisation.")
    slot = models.CharField(max_length=64, help_text="The threshold or period it is for.")
    context = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    swept_at = models.DateTimeField(null=True, blank=True)
    tries = models.PositiveSmallIntegerField(default=0)
    recipients = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject", "slot"], name="events_notice_once"),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], name="events_notice_pending", condition=Q(state="pending")
            ),
            models.Index(fields=["organization", "kind", "created_at"], name="events_notice_org"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.subject} ({self.slot}): {self.state}"


class JobRun(models.Model):
    """A periodic job's run for one period: the unique row is the claim, so it runs once."""

    job = models.CharField(max_length=64)
    period_start = models.DateTimeField()
    claimed_at = models.DateTimeField(default=timezone.now)
    worker = models.CharField(max_length=64, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-period_start", "job"]
        constraints = [
            models.UniqueConstraint(fields=["job", "period_start"], name="events_job_once"),
        ]

    def __str__(self) -> str:
        return f"{self.job} at {self.period_start:%Y-%m-%d %H:%M:%S}"


class KeyRefusalCount(models.Model):
    """Refusals of one known key in one minute, written in batches (never per request)."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="+"
    )
    key_id = models.CharField(max_length=12)
    minute = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key_id", "minute"], name="events_refusal_key_minute"
            ),
        ]
        indexes = [models.Index(fields=["minute"], name="events_refusal_minute")]

    def __str__(self) -> str:
        return f"{self.key_id} at {self.minute:%Y-%m-%d %H:%M}: {self.count}"
