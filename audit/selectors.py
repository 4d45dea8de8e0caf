"""Reads of the audit log for the pages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from orgs.models import Organization


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def events_for_page(
    *,
    organization: Organization,
    action: str = "",
    actor: str = "",
    target: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """Return the organisation's events, newest first, narrowed by the page's filters.

    `action` is exact, or a prefix when it ends in "."; `actor` is an actor id or
    part of its label (an email, a key name); `since` and `until` are whole days.
    """
    events = AuditEvent.objects.filter(organization=organization)
    if action:
        if action.endswith("."):
            events = events.filter(action__startswith=action)
        else:
            events = events.filter(action=action)
    if actor:
        events = events.filter(Q(actor_id=actor) | Q(actor_label__icontains=actor))
    if target:
        events = events.filter(target_id=target)
    if since:
        events = events.filter(occurred_at__gte=_day_start(since))
    if until:
        events = events.filter(occurred_at__lt=_day_start(until + timedelta(days=1)))
    return events.order_by("-occurred_at", "-id")


def actions_seen(*, organization: Organization) -> list[str]:
    """Return the actions recorded in the organisation, sorted, for the filter menu."""
    return sorted(
        AuditEvent.objects.filter(organization=organization)
        .order_by()
        .values_list("action", flat=True)
        .distinct()
    )
