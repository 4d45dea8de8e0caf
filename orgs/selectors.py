"""Reads of organisations, members and invitations that services and pages share."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.text import slugify

from orgs import invitations
from orgs.models import Invitation, Membership, Organization, User, canonical_email


def membership_of(*, organization: Organization, user: Any) -> Membership | None:
    """Return the person's membership in the organisation, or None (also for a non-person)."""
    if not isinstance(user, User):
        return None
    return Membership.objects.filter(organization=organization, user=user).first()


def membership_by_slug(*, user: Any, slug: str | None) -> Membership | None:
    """Return the person's membership in the organisation named by `slug`, with it, or None."""
    return (
        Membership.objects.select_related("organization")
        .filter(organization__slug=slug, user=user)
        .first()
    )


def memberships_of(user: Any) -> list[Membership]:
    """Return the person's memberships, by organisation name, for the switcher."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name", "organization__slug")
    )


def organization_members(*, organization: Organization) -> QuerySet[Membership]:
    """Return the organisation's memberships with their people, oldest first."""
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("created_at", "pk")
    )


def invitations_unanswered(
    *, organization: Organization, email: str | None = None
) -> QuerySet[Invitation]:
    """Return the invitations neither accepted nor withdrawn, expired ones included.

    With `email`, only those to that address (compared in its canonical form).
    """
    unanswered = Invitation.objects.filter(
        organization=organization, accepted_at__isnull=True, revoked_at__isnull=True
    )
    if email is not None:
        unanswered = unanswered.filter(email=canonical_email(email))
    return unanswered


def invitations_pending(*, organization: Organization) -> list[Invitation]:
    """Return the invitations that can still be accepted, newest first."""
    unanswered = invitations_unanswered(organization=organization).order_by("-created_at")
    return [invitation for invitation in unanswered if invitation.is_pending]


def invitation_find(token: str) -> Invitation | None:
    """Return the pending invitation a token opens, or None (forged, old, used, withdrawn)."""
    if not invitations.signature_is_valid(token):
        return None
    invitation = (
        Invitation.objects.select_related("organization")
        .filter(token_hash=invitations.hash_token(token))
        .first()
    )
    if invitation is None or not invitation.is_pending:
        return None
    return invitation


# Fixed addresses under /orgs/ that an organisation's slug would be shadowed by
# (`/orgs/new/` creates an organisation); orgs/tests/test_slugs.py keeps this complete.
RESERVED_SLUGS = frozenset({"new"})


def free_slug(name: str) -> str:
    """Return a slug made from `name` that no organisation uses yet and no page reserves."""
    base = slugify(name)[:40].strip("-") or "org"
    slug, n = base, 1
    while slug in RESERVED_SLUGS or Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug
