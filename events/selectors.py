"""Reads of endpoints and deliveries that the API, the page and the admin share."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch, QuerySet

from apikeys.payloads import iso
from events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from orgs.models import Organization


def endpoints_of(*, organization: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=organization)


def deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Return the endpoint's deliveries with their event and attempts, ready to show."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number")))
    )


def endpoint_payload(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """Return the endpoint as the API shows it; never its secret."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "created_at": iso(endpoint.created_at),
        "secret_rotated_at": iso(endpoint.secret_rotated_at),
    }


def attempt_payload(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": iso(attempt.started_at),
        "outcome": attempt.outcome,
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "response_excerpt": attempt.response_excerpt,
    }


def delivery_payload(delivery: WebhookDelivery) -> dict[str, Any]:
    """Return a delivery with its event, the body it sends, and every attempt."""
    event = delivery.event
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event": {"id": event.id, "type": event.type, "created_at": iso(event.created_at)},
        "payload": json.loads(event.body),
        "state": delivery.state,
        "manual": delivery.manual,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": iso(delivery.next_attempt_at)
        if delivery.state == WebhookDelivery.State.PENDING
        else None,
        "created_at": iso(delivery.created_at),
        "finished_at": iso(delivery.finished_at),
        "attempts": [attempt_payload(a) for a in delivery.attempts.all()],
    }
