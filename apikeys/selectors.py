"""Reads of keys that the API, the pages and the admin share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Exists, Max, Min, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from apikeys.models import APIKey, FailedKeyAttempts, KeyActivity, KeyUsageDay, Kind, Status
from apikeys.origins import match_candidates, origin_allowed
from config.errors import ValidationFailed
from orgs.models import Membership, Organization, User
from orgs.roles import Permission


def _viewer_role(organization: Organization, viewer: Any) -> str | None:
    if isinstance(viewer, APIKey):
        return getattr(viewer, "owner_role", None)
    if isinstance(viewer, User):
        return (
            Membership.objects.filter(organization=organization, user=viewer)
            .values_list("role", flat=True)
            .first()
        )
    return None


def api_keys_visible(*, organization: Organization, viewer: Any) -> QuerySet[APIKey]:
    """Return the keys `viewer` (a person or a key) may see in the organisation.

    Organisation keys and people who manage keys see them all; anyone else
    sees only their own personal keys.
    """
    keys = APIKey.objects.filter(organization=organization)
    if isinstance(viewer, APIKey) and viewer.owner_id is None:
        return keys
    role = _viewer_role(organization, viewer)
    if role is not None and organization.policy_for(role).can(Permission.MANAGE_ORG_KEYS):
        return keys
    owner_id = viewer.owner_id if isinstance(viewer, APIKey) else getattr(viewer, "pk", None)
    if owner_id is None:
        return keys.none()
    return keys.filter(owner_id=owner_id)


def status_filter(status: str, now: datetime) -> Q:
    """Return the condition for keys whose derived status is `status` at `now`."""
    live = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    conditions = {
        Status.REVOKED: Q(revoked_at__isnull=False),
        Status.EXPIRED: Q(revoked_at__isnull=True, expires_at__lte=now),
        Status.SUPERSEDED: live & Q(replaced_by__isnull=False),
        Status.ACTIVE: live & Q(replaced_by__isnull=True),
    }
    if status not in conditions:
        raise ValidationFailed.on("status", f"Choose one of: {', '.join(Status.values)}.")
    return conditions[status]


def daily_usage(
    *, key: APIKey, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """Return (day, requests) for each of the last `days` UTC days, oldest first, zeros included."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    counts = dict(
        KeyUsageDay.objects.filter(key=key, day__gte=first, day__lte=today).values_list(
            "day", "count"
        )
    )
    return [
        (first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)
    ]


def usage_by_key_and_day(
    *, organization: Organization, key_ids: list[str], first: date, last: date
) -> dict[str, dict[date, int]]:
    """Return {key id: {day: requests}} for the keys between two UTC days, from one query."""
    rows = KeyUsageDay.objects.filter(
        organization=organization, key_id__in=key_ids, day__gte=first, day__lte=last
    ).values_list("key_id", "day", "count")
    usage: dict[str, dict[date, int]] = {}
    for key_id, day, count in rows:
        usage.setdefault(key_id, {})[day] = count
    return usage


def usage_keys_worth_showing(
    *, keys: QuerySet[APIKey], first: date, now: datetime
) -> QuerySet[APIKey]:
    """Return the keys a usage report lists: live ones, and finished ones used since `first`.

    A revoked or expired key without requests in the period says nothing.
    """
    used_since = KeyUsageDay.objects.filter(key=OuterRef("pk"), day__gte=first)
    live = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    return keys.filter(live | Exists(used_since))


def usage_on_day(
    *, organization: Organization, keys: QuerySet[APIKey], day: date
) -> tuple[int, int]:
    """Return (requests, live requests) of `keys` on one UTC day, from one aggregate query."""
    rows = KeyUsageDay.objects.filter(organization=organization, day=day, key__in=keys.values("pk"))
    totals = rows.aggregate(
        requests=Sum("count"), live=Sum("count", filter=Q(key__environment="live"))
    )
    return totals["requests"] or 0, totals["live"] or 0


@dataclass(frozen=True)
class UsageReport:
    """Requests per key and UTC day for a page of keys, and the last day's totals."""

    days: list[date]
    by_key: dict[str, dict[date, int]]
    requests_last_day: int
    live_requests_last_day: int


def usage_report(
    *,
    organization: Organization,
    visible: QuerySet[APIKey],
    page: list[APIKey],
    first: date,
    last: date,
) -> UsageReport:
    """Return the usage of the `page` keys from `first` to `last`, and `last`'s totals.

    The per-day figures cover the page; the totals of the last day cover every
    key in `visible`, whatever page the caller is on. Two queries.
    """
    by_key = usage_by_key_and_day(
        organization=organization, key_ids=[key.pk for key in page], first=first, last=last
    )
    requests, live = usage_on_day(organization=organization, keys=visible, day=last)
    return UsageReport(
        days=[first + timedelta(days=i) for i in range((last - first).days + 1)],
        by_key=by_key,
        requests_last_day=requests,
        live_requests_last_day=live,
    )


def top_offenders(*, since: datetime, limit: int = 20) -> list[tuple[str, int, datetime]]:
    """Return (address, invalid keys, last minute seen) since `since`, most attempts first."""
    rows = (
        FailedKeyAttempts.objects.filter(minute__gte=since)
        .values("address")
        .annotate(failures=Sum("count"), last_seen=Max("minute"))
        .order_by("-failures", "address")[:limit]
    )
    return [(row["address"], row["failures"], row["last_seen"]) for row in rows]


def key_activity_for(
    *, key: APIKey, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[KeyActivity]:
    """Return the key's activity rows, newest hour first, within [since, until)."""
    rows = KeyActivity.objects.filter(key=key)
    if since is not None:
        rows = rows.filter(hour__gt=since - timedelta(hours=1))  # hours that overlap since
    if until is not None:
        rows = rows.filter(hour__lt=until)
    return rows.order_by("-hour", "-count", "address", "route")


def key_activity_summary(*, key: APIKey, since: datetime | None = None) -> dict[str, list]:
    """Return the key's addresses and routes with their totals, busiest first (for people)."""
    rows = key_activity_for(key=key, since=since)
    addresses = (
        rows.order_by()
        .values("address")
        .annotate(total=Sum("count"), first_hour=Min("hour"), last_hour=Max("hour"))
        .order_by("-total", "address")
    )
    routes = (
        rows.order_by()
        .values("route", "outcome")
        .annotate(total=Sum("count"))
        .order_by("-total", "route", "outcome")
    )
    return {"addresses": list(addresses), "routes": list(routes)}


def publishable_origin_listed(origin: str, *, now: datetime | None = None) -> bool:
    """Return whether any usable publishable key lists `origin` (a canonical request origin).

    CORS preflights carry no key, so this is all they can be checked against; the
    request that follows is checked against its own key's origins.
    """

    now = now or timezone.now()
    keys = APIKey.objects.filter(kind=Kind.PUBLISHABLE, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    if connection.features.supports_json_field_contains:
        listed = Q()
        for candidate in match_candidates(origin):
            listed |= Q(allowed_origins__contains=[candidate])
        return keys.filter(listed).exists()
    return any(
        origin_allowed(origin, allowed)
        for allowed in keys.values_list("allowed_origins", flat=True).iterator()
    )
