"""The outbox: each event is written in the transaction of the change that caused it.

Services record their audit event inside their transaction (audit.services); this
module listens there and, for the actions that are webhook events
(events/catalog.py), writes an `Event` row with its payload built at that moment:
the key object as the API shows it and who acted, never a token, a hash or a
secret. A rolled-back change therefore sends nothing, and a crash between the commit
and the send loses nothing: the worker dispatches what was committed, and the sweep
(events/jobs.py) picks up whatever a dead process left.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from apikeys.models import APIKey
from apikeys.payloads import iso, key_payload
from apikeys.selectors import key_activity_summary
from audit.models import AuditEvent
from events.catalog import AUDITED_EVENT_TYPES, EVENT_TYPES
from events.models import Event, WebhookEndpoint
from events.notices import notice_create
from orgs.models import LeakResponse, Organization

logger = logging.getLogger("keyward.events")

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_BODY_BYTES = 20_000


def make_id(prefix: str, length: int = 24) -> str:
    """Return a fresh public id like `evt_…`: no dots, so it is safe in a signed message."""
    return f"{prefix}_{get_random_string(length, BASE62)}"


def actor_payload(event: AuditEvent) -> dict[str, Any]:
    """Return who acted, as the audit API shows it: type, id (or null) and label."""
    return {"type": event.actor_type, "id": event.actor_id or None, "label": event.actor_label}


SYSTEM_ACTOR = {"type": "system", "id": None, "label": "keyward"}


def _body(
    event_id: str, event_type: str, created_at: datetime, org: Organization, data: dict
) -> str:
    document = {
        "id": event_id,
        "type": event_type,
        "created_at": iso(created_at),
        "organization": {"id": str(org.pk), "slug": org.slug},
        "data": data,
    }
    text = json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_BODY_BYTES:
        # Never expected (a key object is a few hundred bytes); a receiver still learns
        # what happened to which key, and reads the rest from the API.
        slim = {name: data[name] for name in ("actor",) if name in data}
        if isinstance(data.get("key"), dict):
            slim["key"] = {"id": data["key"]["id"], "prefix": data["key"]["prefix"]}
        document["data"] = {**slim, "truncated": True}
        text = json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":"))
    return text


def event_record(
    *,
    organization: Organization,
    type: str,
    data: dict[str, Any],
    key_id: str = "",
    endpoint: WebhookEndpoint | None = None,
    created_at: datetime | None = None,
) -> Event:
    """Write an event in the caller's transaction; the worker sends it once that commits."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the transaction of its change.")
    if type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {type!r}.")
    created_at = created_at or timezone.now()
    event_id = make_id("evt")
    event = Event.objects.create(
        id=event_id,
        organization=organization,
        type=type,
        body=_body(event_id, type, created_at, organization, data),
        key_id=key_id,
        endpoint=endpoint,
        created_at=created_at,
        # An event for one endpoint (a test) gets its delivery from the caller: no fan-out.
        dispatched_at=created_at if endpoint is not None else None,
    )
    if endpoint is None:
        transaction.on_commit(lambda: _enqueue_dispatch(event_id))
    return event


def _enqueue_dispatch(event_id: str) -> None:
    from events.tasks import dispatch_event

    try:
        dispatch_event.enqueue(event_id)
    except Exception:  # the sweep enqueues it again; the change itself has committed
        logger.exception("Could not enqueue event %s; the sweep will.", event_id)


def _key_data(event: AuditEvent, target: Any) -> tuple[dict[str, Any], str]:
    key = target if isinstance(target, APIKey) else APIKey.objects.get(pk=event.target_id)
    return {"key": key_payload(key), "actor": actor_payload(event)}, key.pk


def _member_data(event: AuditEvent, target: Any) -> dict[str, Any]:
    role = event.changes.get("role") or {}
    return {
        "member": {
            "id": event.target_id,
            "email": event.target_label,
            "role": role.get("after"),
            "previous_role": role.get("before"),
        },
        "actor": actor_payload(event),
    }


def leak_notice(event: AuditEvent, data: dict[str, Any]) -> None:
    """Record the email that tells the key's people it leaked, with who has used it since.

    Keyward cannot know when a key was exposed, so the list is every address in the
    key's activity (30 days, trailing real time by the usage flush interval).
    """
    organization = Organization.objects.get(pk=event.organization_id)
    key_id = data["key"]["id"]
    addresses = [
        {
            "address": row["address"],
            "total": row["total"],
            "first_seen": row["first_hour"].strftime("%Y-%m-%d %H:00 UTC"),
            "last_seen": row["last_hour"].strftime("%Y-%m-%d %H:00 UTC"),
        }
        for row in key_activity_summary(key=APIKey(pk=key_id))["addresses"]
    ]
    notice_create(
        organization=organization,
        kind="api_key.leaked",
        subject=key_id,
        slot="leak",
        context={
            "key": data["key"],
            "leak": data["leak"],
            "revoked": organization.leak_response == LeakResponse.REVOKE,
            "addresses": addresses,
            "key_path": f"/orgs/{organization.slug}/settings/api-keys/{key_id}/",
        },
    )


def on_audit_event(event: AuditEvent, *, target: Any = None, actor: Any = None) -> None:
    """Write the webhook event of an audited change, in the change's own transaction."""
    if event.action not in AUDITED_EVENT_TYPES:
        return
    key_id = ""
    if event.action.startswith("api_key."):
        data, key_id = _key_data(event, target)
        if event.action == "api_key.leaked":
            data["leak"] = {name: change.get("after") for name, change in event.changes.items()}
            leak_notice(event, data)
    else:
        data = _member_data(event, target)
    organization = Organization(pk=event.organization_id)
    organization.slug = (
        Organization.objects.filter(pk=event.organization_id).values_list("slug", flat=True).get()
    )
    event_record(
        organization=organization,
        type=event.action,
        data=data,
        key_id=key_id,
        created_at=event.occurred_at,
    )
