"""Recording audit events, inside the transaction of the change they describe."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from audit.actors import Actor, Target
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import PRUNED
from config.context import current_context
from config.net import normal_ip

logger = logging.getLogger("keyward.audit")


def _now() -> datetime:
    return timezone.now()


# Called after each event is recorded, inside its transaction: listener(event, target=, actor=).
_listeners: list[Callable[..., None]] = []


def register_listener(listener: Callable[..., None]) -> None:
    """Call `listener(event, target=…, actor=…)` for every event, in the change's transaction.

    Apps above this one register from their AppConfig.ready() (the webhook outbox,
    docs/README-events.md), so that what a listener writes commits or rolls back with
    the change. `target` and `actor` are the objects the service passed, not their
    labels. A listener that raises undoes the change: no change without its consequences.
    """
    if listener not in _listeners:
        _listeners.append(listener)


def _json_safe(changes: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(changes, cls=DjangoJSONEncoder))


def _normal_ip(value: str | None) -> str | None:
    return normal_ip(value)  # `::ffff:10.5.5.5` is recorded as 10.5.5.5


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
    organisation take turns and the chain stays one unbroken line. Time never
    runs backward along a chain (a clock that steps back is clamped to the last
    event's time), so time filters can be answered with seq bounds.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of its change.")
    _lock_organization(organization_id)
    last = (
        AuditEvent.objects.filter(organization_id=organization_id)
        .order_by("-seq")
        .values_list("seq", "hash", "occurred_at")
        .first()
    )
    occurred_at = _now()
    if last:
        seq, prev_hash, occurred_at = last[0] + 1, last[1], max(occurred_at, last[2])
    else:
        seq, prev_hash = 1, AuditEvent.GENESIS_HASH
    who = Actor.of(actor)
    what = target if isinstance(target, Target) or target is None else target.audit_target
    context = current_context()
    event = AuditEvent(
        organization_id=organization_id,
        occurred_at=occurred_at,
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
    for listener in _listeners:
        listener(event, target=target, actor=actor)
    return event


REVOKED_KEY_USED = "api_key.revoked_key_used"
REVOKED_KEY_USED_INTERVAL = timedelta(hours=1)


def _revoked_use_cache_key(key_id: str) -> str:
    return f"keyward:audit:revoked-used:{key_id}"


def _revoked_use_gate(key_id: str) -> bool | None:
    """Return True for the first report of `key_id` this hour, False after, None if unknown."""
    try:
        return bool(
            cache.add(
                _revoked_use_cache_key(key_id),
                1,
                int(REVOKED_KEY_USED_INTERVAL.total_seconds()),
            )
        )
    except Exception:  # the shared cache is down: the database decides instead
        logger.warning("Shared cache unreachable: deciding revoked_key_used from the database.")
        return None


def _forget_revoked_use(key_id: str) -> None:
    try:
        cache.delete(_revoked_use_cache_key(key_id))
    except Exception:
        logger.warning("Shared cache unreachable while forgetting a revoked_key_used report.")


def audit_revoked_key_used(*, key: Any) -> AuditEvent | None:
    """Record that a revoked key was presented with its correct secret, at most once an hour.

    The request that presented it is refused whatever happens here; a failure
    to record is logged, never raised.
    """
    gate = _revoked_use_gate(key.pk)
    if gate is False:
        return None
    try:
        with transaction.atomic():
            if gate is None:
                _lock_organization(key.organization_id)
                recent = AuditEvent.objects.filter(
                    organization_id=key.organization_id,
                    action=REVOKED_KEY_USED,
                    target_id=key.pk,
                    occurred_at__gte=_now() - REVOKED_KEY_USED_INTERVAL,
                )
                if recent.exists():
                    return None
            return audit_record(
                organization_id=key.organization_id,
                action=REVOKED_KEY_USED,
                actor=key,
                target=key,
                changes={},
            )
    except DatabaseError:
        logger.exception("Could not record %s for key %s.", REVOKED_KEY_USED, key.pk)
        if gate:
            _forget_revoked_use(key.pk)
        return None


def _lock_organization(organization_id: int) -> None:
    """Lock the organisation row for this transaction, as every writer in it does first.

    audit sits below orgs and never imports it (docs/architecture.md): the model
    comes from AuditEvent's own foreign key, so this is the row (and the lock)
    that orgs' `organization_lock` takes.
    """
    organization_model = AuditEvent._meta.get_field("organization").related_model
    row = organization_model.objects.select_for_update().filter(pk=organization_id)
    row.values_list("pk").get()


@dataclass(frozen=True)
class PruneResult:
    """What one organisation's prune removed, and where its chain now starts."""

    organization_id: int
    removed: int
    checkpoint: AuditCheckpoint | None


@transaction.atomic
def audit_prune(*, organization_id: int, older_than: datetime) -> PruneResult:
    """Remove the organisation's events from before `older_than`, keeping the chain verifiable.

    A checkpoint records the seq and hash of the last event removed, so that
    verification resumes from it, and an `audit.pruned` event naming the same seq
    and hash is recorded in the same transaction: verifyaudit accepts a checkpoint
    only with it. The newest event is always kept: it is the chain's head, and the
    next event is chained to it.

    On PostgreSQL the removal is `audit_prune_through()`, a SECURITY DEFINER function
    owned by the tables' owner: the only way past the append-only trigger, so the
    application's own role cannot delete an event any other way
    (docs/README-database-roles.md).
    """
    _lock_organization(organization_id)
    events = AuditEvent.objects.filter(organization_id=organization_id)
    using = events.db
    if connections[using].vendor == "postgresql":
        with connections[using].cursor() as cursor:
            cursor.execute(
                "SELECT audit_prune_through(%s::bigint, %s)", [organization_id, older_than]
            )
            (checkpoint_id,) = cursor.fetchone()
        if checkpoint_id is None:
            return PruneResult(organization_id, 0, None)
        checkpoint = AuditCheckpoint.objects.get(pk=checkpoint_id)
    else:
        checkpoint = _prune_in_python(events, organization_id, older_than)
        if checkpoint is None:
            return PruneResult(organization_id, 0, None)
    audit_record(
        organization_id=organization_id,
        action=PRUNED,
        actor=Actor.system("pruneaudit"),
        changes={
            "through_seq": {"before": None, "after": checkpoint.seq},
            "through_hash": {"before": None, "after": checkpoint.hash},
            "removed_count": {"before": None, "after": checkpoint.removed_count},
            "older_than": {"before": None, "after": older_than.isoformat()},
        },
    )
    return PruneResult(organization_id, checkpoint.removed_count, checkpoint)


def _prune_in_python(events, organization_id: int, older_than: datetime) -> AuditCheckpoint | None:
    """Do what audit_prune_through() does on PostgreSQL, where no trigger guards the table."""
    head = events.order_by("-seq").values_list("seq", flat=True).first()
    last_old = (
        events.filter(occurred_at__lt=older_than, seq__lt=head or 0)
        .order_by("-seq")
        .values_list("seq", "hash")
        .first()
    )
    if last_old is None:
        return None
    through_seq, through_hash = last_old
    doomed = events.filter(seq__lte=through_seq)
    # The queryset refuses delete(); this service alone removes events.
    removed = doomed._raw_delete(doomed.db)
    return AuditCheckpoint.objects.create(
        organization_id=organization_id,
        seq=through_seq,
        hash=through_hash,
        older_than=older_than,
        removed_count=removed,
    )
