"""Reads of the audit log that the API, the pages and the commands share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from audit.models import AuditCheckpoint, AuditEvent

VERIFY_CHUNK = 2000
PRUNED = "audit.pruned"  # the action of audit.services.audit_prune's event


def audit_events_visible(
    *,
    organization: Any,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Return the organisation's events, filtered; `action` ending in '.' is a prefix."""
    events = AuditEvent.objects.filter(organization=organization)
    if action:
        events = (
            events.filter(action__startswith=action)
            if action.endswith(".")
            else events.filter(action=action)
        )
    if actor:
        events = events.filter(actor_id=actor)
    if target:
        events = events.filter(target_id=target)
    if since is not None:
        events = events.filter(seq__gte=_first_seq_at_or_after(organization, since))
    if until is not None:
        events = events.filter(seq__lte=_last_seq_before(organization, until))
    return events


# occurred_at never decreases along a chain (audit_record sees to it), so a time
# bound is exactly a seq bound. Found through the (organization, occurred_at) index,
# it lets every page be read backward along (organization, seq), however wide or
# old the window: filtering on occurred_at itself made PostgreSQL sort the window.
def _first_seq_at_or_after(organization: Any, moment: datetime) -> Subquery:
    return Subquery(
        AuditEvent.objects.filter(organization=organization, occurred_at__gte=moment)
        .order_by("occurred_at", "seq")
        .values("seq")[:1]
    )


def _last_seq_before(organization: Any, moment: datetime) -> Subquery:
    return Subquery(
        AuditEvent.objects.filter(organization=organization, occurred_at__lt=moment)
        .order_by("-occurred_at", "-seq")
        .values("seq")[:1]
    )


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking one organisation's chain."""

    organization: Any
    checked: int
    head_seq: int | None
    head_hash: str | None
    broken_at: AuditEvent | None = None
    reason: str = ""

    @property
    def holds(self) -> bool:
        return not self.reason


def audit_checkpoint_latest(*, organization_id: int) -> AuditCheckpoint | None:
    """Return the checkpoint the organisation's chain starts from, if it was ever pruned."""
    return AuditCheckpoint.objects.filter(organization_id=organization_id).order_by("-seq").first()


def _checkpoint_fault(checkpoint: AuditCheckpoint) -> tuple[AuditEvent | None, str]:
    """Return why `checkpoint` may not start the chain, or (None, "") when it may.

    A checkpoint stands for events a prune removed: none may remain at or below
    it, and the prune's own `audit.pruned` event, recorded after it, must name its
    seq, hash and count. Otherwise a row written into the table could hide
    rewritten events from verification.
    """
    events = AuditEvent.objects.filter(organization_id=checkpoint.organization_id)
    left = events.filter(seq__lte=checkpoint.seq).order_by("seq").first()
    if left is not None:
        return left, (
            f"event #{left.seq} remains at or below the checkpoint at #{checkpoint.seq}, "
            "so no prune removed it"
        )
    for event in events.filter(seq__gt=checkpoint.seq, action=PRUNED).order_by("seq"):
        change = {name: value.get("after") for name, value in event.changes.items()}
        if change.get("through_seq") != checkpoint.seq:
            continue
        if (
            change.get("removed_count") != checkpoint.removed_count
            or change.get("through_hash", checkpoint.hash) != checkpoint.hash
        ):
            return (
                event,
                f"the audit.pruned event does not match the checkpoint at #{checkpoint.seq}",
            )
        return None, ""
    return None, f"the checkpoint at #{checkpoint.seq} has no matching audit.pruned event"


def audit_chain_verify(*, organization: Any) -> ChainReport:
    """Walk the organisation's chain from its start; report the first event that does not match.

    A chain with no event at all fails too: every organisation begins with `org.created`,
    and a prune always keeps the newest event.
    """
    checkpoint = audit_checkpoint_latest(organization_id=organization.pk)
    if checkpoint:
        event, reason = _checkpoint_fault(checkpoint)
        if reason:
            return ChainReport(organization, 0, None, None, event, reason)
        expected_seq, expected_prev = checkpoint.seq + 1, checkpoint.hash
    else:
        expected_seq, expected_prev = 1, AuditEvent.GENESIS_HASH
    events = (
        AuditEvent.objects.filter(organization_id=organization.pk, seq__gte=expected_seq)
        .order_by("seq")
        .iterator(chunk_size=VERIFY_CHUNK)
    )
    checked = 0
    for event in events:
        reason = ""
        if event.seq != expected_seq:
            reason = f"seq is {event.seq}, expected {expected_seq} (events missing)"
        elif event.prev_hash != expected_prev:
            reason = "prev_hash does not match the previous event's hash"
        elif event.hash != event.compute_hash():
            reason = "hash does not match the event's contents"
        if reason:
            return ChainReport(
                organization, checked, expected_seq - 1, expected_prev, event, reason
            )
        checked += 1
        expected_seq, expected_prev = event.seq + 1, event.hash
    if checked == 0:
        return ChainReport(
            organization, 0, None, None, None, "no events: every chain begins with org.created"
        )
    return ChainReport(organization, checked, expected_seq - 1, expected_prev)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def events_for_page(
    *,
    organization: Any,
    action: str = "",
    actor: str = "",
    target: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """Return the events the audit page shows, newest first; `since` and `until` are whole days.

    On the page `actor` may also be part of the actor's label (an email, a key name).
    """
    events = audit_events_visible(
        organization=organization,
        action=action or None,
        target=target or None,
        since=_day_start(since) if since else None,
        until=_day_start(until + timedelta(days=1)) if until else None,
    )
    if actor:
        events = events.filter(Q(actor_id=actor) | Q(actor_label__icontains=actor))
    return events.order_by("-seq")


def actions_seen(*, organization: Any) -> list[str]:
    """Return the actions recorded in the organisation, sorted, for the filter menu."""
    return sorted(
        AuditEvent.objects.filter(organization=organization)
        .order_by()
        .values_list("action", flat=True)
        .distinct()
    )
