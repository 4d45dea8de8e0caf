"""Recording audit events, inside the transaction of the change they describe."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from audit.actors import Actor, Target
from audit.models import AuditEvent
from config.context import current_context


def _json_safe(changes: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(changes, cls=DjangoJSONEncoder))


def _normal_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return `{field: {"before", "after"}}` for the fields whose values differ."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in after
        if before.get(name) != after.get(name)
    }


def audit_record(
    *,
    organization_id: int,
    action: str,
    actor: Any,
    target: Target | Any | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the organisation's chain, in the caller's transaction.

    The organisation row is locked first, so that concurrent writers in one
    organisation take turns and the chain stays one unbroken line.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of its change.")
    from orgs.models import Organization

    Organization.objects.select_for_update().filter(pk=organization_id).values_list("pk").get()
    last = (
        AuditEvent.objects.filter(organization_id=organization_id)
        .order_by("-seq")
        .values_list("seq", "hash")
        .first()
    )
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, AuditEvent.GENESIS_HASH)
    who = Actor.of(actor)
    what = target if isinstance(target, Target) or target is None else target.audit_target
    context = current_context()
    event = AuditEvent(
        organization_id=organization_id,
        occurred_at=timezone.now(),
        action=action,
        actor_type=who.type,
        actor_id=who.id,
        actor_label=who.label[:254],
        ip=_normal_ip(context.ip),
        user_agent=context.user_agent,
        request_id=context.request_id,
        trace_id=context.trace_id,
        target_type=what.type if what else "",
        target_id=what.id if what else "",
        target_label=(what.label if what else "")[:254],
        changes=_json_safe(changes or {}),
        seq=seq,
        prev_hash=prev_hash,
    )
    event.hash = event.compute_hash()
    event.save()
    return event
