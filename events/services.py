"""Webhook endpoints and deliveries: each change records its audit event.

The signing secret exists in plain text only in the return value of the service that
made it (create, rotate); the database holds it sealed (events/sealing.py), and no
audit event, log line or error ever carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apikeys.models import APIKey
from apikeys.payloads import key_payload
from audit.actors import Actor
from audit.services import audit_record, diff
from config.errors import Forbidden, NotFound, ValidationFailed
from events import addresses, catalog, sealing, signing
from events.models import Event, WebhookDelivery, WebhookEndpoint
from events.notices import notice_create
from events.outbox import SYSTEM_ACTOR, event_record, make_id
from orgs.models import Membership, Organization, User
from orgs.roles import Permission
from orgs.services import organization_lock

MAX_ENDPOINTS = 20
MAX_DESCRIPTION = 200
ROTATION_OVERLAP = timedelta(hours=24)
UPDATABLE_FIELDS = ("url", "description", "events", "enabled")

logger = logging.getLogger("keyward.events")


def _now():
    return timezone.now()


def clean_events(value: Any) -> list[str]:
    """Return the event types in catalogue order, or raise ValidationFailed naming `events`."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed.on("events", "Give a list of event types (empty for all).")
    unknown = sorted({v for v in value if v not in catalog.EVENT_TYPES})
    if unknown:
        raise ValidationFailed.on(
            "events", f"Unknown event types: {', '.join(repr(v)[:80] for v in unknown[:10])}."
        )
    return catalog.ordered(list(value))


def clean_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed.on("description", "Enter text.")
    value = value.strip()
    if len(value) > MAX_DESCRIPTION:
        raise ValidationFailed.on("description", f"Use at most {MAX_DESCRIPTION} characters.")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise ValidationFailed.on("description", "Enter text without control characters.")
    return value


def clean_enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed.on("enabled", "Must be true or false.")
    return value


def _collect(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, check in checks.items():
        try:
            cleaned[name] = check()
        except ValidationFailed as exc:
            errors.update(exc.extra.get("fields") or {name: [exc.message]})
    if errors:
        raise ValidationFailed(fields=errors)
    return cleaned


def _require(organization: Organization, actor: Any) -> None:
    """Refuse a person whose role may not manage webhooks; keys were scope-checked by the view."""
    if not isinstance(actor, User):
        return
    membership = (
        Membership.objects.select_related("organization")
        .filter(organization=organization, user=actor)
        .first()
    )
    if membership is None:
        raise NotFound()
    if not membership.policy.can(Permission.MANAGE_WEBHOOKS):
        raise Forbidden("Your role does not allow managing webhooks.")


def _snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
    }


def _locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    organization = organization_lock(endpoint.organization_id)
    try:
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    except WebhookEndpoint.DoesNotExist:
        raise NotFound("No such webhook endpoint.") from None
    endpoint.organization = organization
    return endpoint


@transaction.atomic
def webhook_endpoint_create(
    *,
    organization: Organization,
    actor: Any,
    url: Any,
    description: Any = "",
    events: Any = None,
    enabled: Any = True,
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; return it with its `whsec_` secret, which exists only in this value."""
    cleaned = _collect(
        {
            "url": lambda: addresses.check_url(url).url,
            "description": lambda: clean_description(description),
            "events": lambda: clean_events(events),
            "enabled": lambda: clean_enabled(enabled),
        }
    )
    organization = organization_lock(organization.pk)
    _require(organization, actor)
    if WebhookEndpoint.objects.filter(organization=organization).count() >= MAX_ENDPOINTS:
        raise ValidationFailed(
            f"An organisation can have at most {MAX_ENDPOINTS} webhook endpoints.",
            fields={"url": [f"Remove an endpoint first (at most {MAX_ENDPOINTS})."]},
        )
    endpoint_id = make_id("we", 16)
    raw = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        id=endpoint_id,
        organization=organization,
        created_by_label=Actor.of(actor).label,
        secret_sealed=sealing.seal(raw, context=endpoint_id),
        disabled_reason="" if cleaned["enabled"] else WebhookEndpoint.DisabledReason.MANUAL,
        **cleaned,
    )
    audit_record(
        organization_id=organization.pk,
        action="webhook.created",
        actor=actor,
        target=endpoint,
        changes=diff({}, _snapshot(endpoint)),
    )
    return endpoint, signing.encode_secret(raw)


@transaction.atomic
def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, actor: Any, **fields: Any
) -> WebhookEndpoint:
    """Change an endpoint's URL, description, events or whether it is enabled."""
    unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
    if unknown:
        raise ValidationFailed(fields={name: ["This field cannot be changed."] for name in unknown})
    checks: dict[str, Callable[[], Any]] = {
        "url": lambda: addresses.check_url(fields["url"]).url,
        "description": lambda: clean_description(fields["description"]),
        "events": lambda: clean_events(fields["events"]),
        "enabled": lambda: clean_enabled(fields["enabled"]),
    }
    cleaned = _collect({name: checks[name] for name in fields})
    endpoint = _locked(endpoint)
    _require(endpoint.organization, actor)
    before = _snapshot(endpoint)
    for name, value in cleaned.items():
        setattr(endpoint, name, value)
    changes = diff(before, _snapshot(endpoint))
    if not changes:
        return endpoint
    update = [*cleaned, "updated_at"]
    if "enabled" in changes:
        endpoint.disabled_reason = "" if endpoint.enabled else WebhookEndpoint.DisabledReason.MANUAL
        endpoint.failing_since = None
        update += ["disabled_reason", "failing_since"]
    endpoint.save(update_fields=update)
    audit_record(
        organization_id=endpoint.organization_id,
        action="webhook.updated",
        actor=actor,
        target=endpoint,
        changes=changes,
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Any) -> None:
    """Delete an endpoint with its deliveries; events still on their way to it are dropped."""
    endpoint = _locked(endpoint)
    _require(endpoint.organization, actor)
    audit_record(
        organization_id=endpoint.organization_id,
        action="webhook.deleted",
        actor=actor,
        target=endpoint,
        changes=diff(_snapshot(endpoint), {name: None for name in _snapshot(endpoint)}),
    )
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: Any
) -> tuple[WebhookEndpoint, str]:
    """Give the endpoint a new secret; the old one keeps signing beside it for 24 hours."""
    endpoint = _locked(endpoint)
    _require(endpoint.organization, actor)
    now = _now()
    raw = signing.new_secret()
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_until = now + ROTATION_OVERLAP
    endpoint.secret_sealed = sealing.seal(raw, context=endpoint.pk)
    endpoint.secret_rotated_at = now
    endpoint.save(
        update_fields=[
            "previous_secret_sealed",
            "previous_secret_until",
            "secret_sealed",
            "secret_rotated_at",
            "updated_at",
        ]
    )
    audit_record(
        organization_id=endpoint.organization_id,
        action="webhook.secret_rotated",
        actor=actor,
        target=endpoint,
        changes={
            "previous_secret_until": {
                "before": None,
                "after": endpoint.previous_secret_until.isoformat(),
            }
        },
    )
    return endpoint, signing.encode_secret(raw)


def _manual_delivery(event: Event, endpoint: WebhookEndpoint) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        id=make_id("whd", 16),
        organization_id=endpoint.organization_id,
        event=event,
        endpoint=endpoint,
        manual=True,
        next_attempt_at=_now(),
    )
    transaction.on_commit(lambda: enqueue_delivery(delivery.pk))
    return delivery


def enqueue_delivery(delivery_id: str, run_after: datetime | None = None) -> None:
    """Queue the delivery's next attempt (call it on commit); the sweep backs this up."""
    from events.tasks import deliver_webhook  # the tasks module imports the services

    task = deliver_webhook if run_after is None else deliver_webhook.using(run_after=run_after)
    try:
        task.enqueue(delivery_id)
    except Exception:  # the change has committed; the sweep queues it later
        logger.exception("Could not enqueue delivery %s; the sweep will.", delivery_id)


@transaction.atomic
def webhook_endpoint_test(*, endpoint: WebhookEndpoint, actor: Any) -> WebhookDelivery:
    """Send a `webhook.test` event to this endpoint only; return its delivery."""
    endpoint = _locked(endpoint)
    _require(endpoint.organization, actor)
    event = event_record(
        organization=endpoint.organization,
        type="webhook.test",
        data={
            "endpoint": {"id": endpoint.pk, "url": endpoint.url},
            "actor": _actor(actor),
        },
        endpoint=endpoint,
    )
    return _manual_delivery(event, endpoint)


def _actor(actor: Any) -> dict[str, Any]:
    who = Actor.of(actor)
    if who.type == Actor.SYSTEM:
        return dict(SYSTEM_ACTOR, label=who.label or SYSTEM_ACTOR["label"])
    return {"type": who.type, "id": who.id or None, "label": who.label}


@transaction.atomic
def webhook_delivery_redeliver(*, delivery: WebhookDelivery, actor: Any) -> WebhookDelivery:
    """Send the delivery's event to its endpoint again: one attempt, the same `webhook-id`."""
    endpoint = _locked(delivery.endpoint)
    _require(endpoint.organization, actor)
    return _manual_delivery(delivery.event, endpoint)


@transaction.atomic
def webhook_endpoint_disable(
    *, endpoint: WebhookEndpoint, reason: str, detail: str = ""
) -> WebhookEndpoint | None:
    """Turn off an endpoint the system gave up on (410 Gone, or 5 days of failures)."""
    try:
        endpoint = _locked(endpoint)
    except NotFound:
        return None
    if not endpoint.enabled:
        return endpoint
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    audit_record(
        organization_id=endpoint.organization_id,
        action="webhook.disabled",
        actor=Actor.system("webhooks"),
        target=endpoint,
        changes={
            "enabled": {"before": True, "after": False},
            "reason": {"before": None, "after": detail or reason},
        },
    )
    notice_create(
        organization=endpoint.organization,
        kind="webhook.disabled",
        subject=endpoint.pk,
        slot=_now().isoformat(),
        context={"endpoint": {"id": endpoint.pk, "url": endpoint.url}, "reason": detail or reason},
    )
    return endpoint


def key_event_data(key: APIKey, **extra: Any) -> dict[str, Any]:
    """Return the `data` of a key event the system raised (expiring, expired)."""
    return {"key": key_payload(key), **extra, "actor": dict(SYSTEM_ACTOR)}
