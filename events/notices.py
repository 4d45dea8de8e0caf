"""Email notices: one per kind, subject and threshold, however many workers run.

`NOTICE_KINDS` is the table of what Keyward emails, to whom, with which templates
(`templates/events/email/<template>.txt` and `.html`). A new kind is one entry
(`register_notice_kind`). `notice_create` records a notice inside the caller's
transaction; the unique (kind, subject, slot) row is what makes it once-only. A
worker then claims it with a lease, sends it, and marks it sent; a worker that dies
mid-send leaves the lease to expire and the sweep hands the notice to another (so a
crash between the mail server's acceptance and the mark can repeat one email; two
live workers never both send it). Organisations whose policy turns email notices off
get the row (so the threshold is spent) but no email.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from events.models import Notice
from orgs.models import Membership, Organization
from orgs.roles import Role

logger = logging.getLogger("keyward.notices")

LEASE = timedelta(minutes=5)
MAX_TRIES = 5


def _active_emails(memberships) -> list[str]:
    return sorted({m.user.email for m in memberships.select_related("user") if m.user.is_active})


def owners_and_admins(organization: Organization) -> list[str]:
    return _active_emails(
        Membership.objects.filter(organization=organization, role__in=[Role.OWNER, Role.ADMIN])
    )


def owners(organization: Organization) -> list[str]:
    return _active_emails(Membership.objects.filter(organization=organization, role=Role.OWNER))


def key_people(organization: Organization, context: dict[str, Any]) -> list[str]:
    """A personal key's owner (while still a member); an organisation key's owners and admins."""
    owner = (context.get("key") or {}).get("owner")
    if owner:
        return _active_emails(
            Membership.objects.filter(organization=organization, user_id=owner["id"])
        )
    return owners_and_admins(organization)


@dataclass(frozen=True)
class NoticeKind:
    """What one kind of notice says and to whom."""

    name: str
    subject: Callable[[dict[str, Any]], str]
    template: str
    recipients: Callable[[Organization, dict[str, Any]], list[str]]


NOTICE_KINDS: dict[str, NoticeKind] = {}


def register_notice_kind(kind: NoticeKind) -> None:
    """Add (or replace) a kind of notice."""
    NOTICE_KINDS[kind.name] = kind


def _key_label(context: dict[str, Any]) -> str:
    key = context.get("key") or {}
    return f"“{key.get('name', '')}” ({key.get('prefix', '')})"


register_notice_kind(
    NoticeKind(
        name="api_key.expiring",
        subject=lambda c: f"Your API key {_key_label(c)} stops working {c['in_words']}",
        template="key_expiring",
        recipients=key_people,
    )
)
register_notice_kind(
    NoticeKind(
        name="api_key.expired",
        subject=lambda c: f"Your API key {_key_label(c)} has expired",
        template="key_expired",
        recipients=key_people,
    )
)
register_notice_kind(
    NoticeKind(
        name="api_key.leaked",
        subject=lambda c: (
            f"Your API key {_key_label(c)} was found in public"
            + (" and has been revoked" if c.get("revoked") else ": rotate it now")
        ),
        template="key_leaked",
        recipients=key_people,
    )
)
register_notice_kind(
    NoticeKind(
        name="security.invalid_key_spike",
        subject=lambda c: (
            f"{c['refusals']} refused attempts on {c['organization_name']}'s API keys"
        ),
        template="invalid_key_spike",
        recipients=lambda organization, context: owners_and_admins(organization),
    )
)
register_notice_kind(
    NoticeKind(
        name="webhook.disabled",
        subject=lambda c: f"Keyward stopped sending webhooks to {c['endpoint']['url'][:80]}",
        template="webhook_disabled",
        recipients=lambda organization, context: owners(organization),
    )
)


def notice_create(
    *,
    organization: Organization,
    kind: str,
    subject: str,
    slot: str,
    context: dict[str, Any],
) -> Notice | None:
    """Record a notice once per (kind, subject, slot), in the caller's transaction.

    Return it, or None when it was recorded before (by this or any other worker).
    """
    if kind not in NOTICE_KINDS:
        raise ValueError(f"Unknown notice kind {kind!r}.")
    state = Notice.State.PENDING
    if not Organization.objects.filter(pk=organization.pk, email_notices=True).exists():
        state = Notice.State.SUPPRESSED
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                organization=organization,
                kind=kind,
                subject=subject,
                slot=slot,
                state=state,
                context={**context, "organization_name": organization.name},
            )
    except IntegrityError:
        return None
    if state == Notice.State.PENDING:
        transaction.on_commit(lambda: enqueue_notice(notice.pk))
    return notice


def enqueue_notice(notice_id: int) -> None:
    from events.tasks import send_notice

    try:
        send_notice.enqueue(notice_id)
    except Exception:
        logger.exception("Could not enqueue notice %s; the sweep will.", notice_id)


def _claim(notice_id: int, now: datetime) -> bool:
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(
        Notice.objects.filter(free, pk=notice_id, state=Notice.State.PENDING).update(
            lease_until=now + LEASE
        )
    )


def _message(notice: Notice, kind: NoticeKind, recipients: list[str]) -> EmailMultiAlternatives:
    context = {**notice.context, "notice": notice}
    base = f"events/email/{kind.template}"
    message = EmailMultiAlternatives(
        subject=kind.subject(notice.context).replace("\n", " ")[:200],
        body=render_to_string(f"{base}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(render_to_string(f"{base}.html", context), "text/html")
    return message


def notice_send(*, notice_id: int) -> str:
    """Send a pending notice if no other worker holds it; return its state afterwards."""
    now = timezone.now()
    if not _claim(notice_id, now):
        return "not claimed"
    notice = Notice.objects.select_related("organization").get(pk=notice_id)
    kind = NOTICE_KINDS.get(notice.kind)
    fields = {"lease_until": None, "tries": notice.tries + 1}
    if kind is None:
        fields.update(state=Notice.State.FAILED, error="Unknown notice kind.")
    elif not notice.organization.email_notices:
        fields.update(state=Notice.State.SUPPRESSED)
    else:
        recipients = kind.recipients(notice.organization, notice.context)
        if not recipients:
            fields.update(state=Notice.State.NO_RECIPIENT)
        else:
            try:
                _message(notice, kind, recipients).send()
            except Exception as exc:
                logger.exception("Could not send notice %s.", notice_id)
                fields["error"] = f"{type(exc).__name__}"[:300]
                if notice.tries + 1 >= MAX_TRIES:
                    fields["state"] = Notice.State.FAILED
                else:  # the sweep tries again once the backoff has passed
                    fields["lease_until"] = now + LEASE * (notice.tries + 1)
            else:
                fields.update(
                    state=Notice.State.SENT, sent_at=timezone.now(), recipients=recipients
                )
    Notice.objects.filter(pk=notice_id).update(**fields)
    return str(fields.get("state", Notice.State.PENDING))
