"""The audit log: append-only events, chained by hash per organisation."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")

    update.queryset_only = True
    delete.queryset_only = True


class AuditEvent(models.Model):
    """One thing that happened in an organisation, by whom, to what, from where."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="audit_events"
    )
    occurred_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=64)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    seq = models.PositiveBigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    GENESIS_HASH = "0" * 64
    HASHED_FIELDS = (
        "organization_id",
        "seq",
        "occurred_at",
        "action",
        "actor_type",
        "actor_id",
        "actor_label",
        "ip",
        "user_agent",
        "request_id",
        "trace_id",
        "target_type",
        "target_id",
        "target_label",
        "changes",
    )

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "seq"], name="audit_event_org_seq"),
            models.CheckConstraint(
                condition=models.Q(actor_type__in=["user", "api_key", "system"]),
                name="audit_event_actor_type_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "occurred_at"], name="audit_org_time"),
            # Pattern ops let PostgreSQL answer `action LIKE 'api_key.%'` (the API's prefix
            # filter) from the index under any collation; `=` uses it as well.
            models.Index(
                fields=["organization", "action", "seq"],
                name="audit_org_action_prefix_seq",
                opclasses=["int8_ops", "varchar_pattern_ops", "int8_ops"],
            ),
            models.Index(fields=["organization", "target_id", "seq"], name="audit_org_target_seq"),
            models.Index(fields=["organization", "actor_id", "seq"], name="audit_org_actor_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.seq} in org {self.organization_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def canonical(self) -> bytes:
        """Return the event's hashed fields as canonical JSON bytes."""
        values = {name: getattr(self, name) for name in self.HASHED_FIELDS}
        values["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat()
        values["ip"] = self.ip or ""
        return json.dumps(
            values,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            cls=DjangoJSONEncoder,
        ).encode("ascii")

    def compute_hash(self) -> str:
        """Return SHA-256 over the previous hash and this event's canonical form."""
        return hashlib.sha256(self.prev_hash.encode("ascii") + b"\n" + self.canonical()).hexdigest()


class AuditCheckpoint(models.Model):
    """Where an organisation's chain starts again after old events were pruned.

    `seq` and `hash` are those of the last event removed: the first event kept
    must carry `seq + 1` and `prev_hash == hash`, so verification resumes here.
    """

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="audit_checkpoints"
    )
    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    pruned_at = models.DateTimeField(default=timezone.now)
    older_than = models.DateTimeField()
    removed_count = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "seq"], name="audit_checkpoint_org_seq"
            ),
        ]

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq} in org {self.organization_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit checkpoints cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit checkpoints cannot be deleted.")
