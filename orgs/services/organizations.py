"""Writes to organisations: create, change the name or policy, and the lock every write takes."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from audit.services import audit_record, diff
from config.errors import Forbidden, NotFound, ValidationFailed
from orgs import hooks
from orgs.models import Membership, Organization, User
from orgs.policy import clean_policy
from orgs.roles import Permission, Role, RolePolicy
from orgs.selectors import RESERVED_SLUGS, membership_of


def organization_lock(organization_id: int) -> Organization:
    """Lock the organisation row for this transaction and return it fresh.

    Every write in an organisation takes this lock first: membership rules,
    key changes and the audit chain then take turns, and a service never
    holds a child row while waiting for its organisation (no deadlock).
    """
    return Organization.objects.select_for_update().get(pk=organization_id)


def _lock(organization: Organization) -> Organization:
    return organization_lock(organization.pk)


def _require(organization: Organization, actor: Any, permission: Permission) -> RolePolicy:
    """Return the acting person's policy, refusing one without `permission`.

    Only people are weighed against their role: the system (management
    commands) and operators in the admin, passed as an `Actor`, act with full rights.
    """
    if not isinstance(actor, User):
        return organization.policy_for(Role.OWNER)
    membership = membership_of(organization=organization, user=actor)
    if membership is None:
        raise NotFound()
    policy = organization.policy_for(membership.role)
    if not policy.can(permission):
        raise Forbidden()
    return policy


def _clean_slug(slug: str) -> str:
    try:
        validate_slug(slug)
    except DjangoValidationError:
        raise ValidationFailed.on(
            "slug", "Use letters, numbers, hyphens or underscores only."
        ) from None
    if len(slug) > 50:
        raise ValidationFailed.on("slug", "Use at most 50 characters.")
    if slug.lower() in RESERVED_SLUGS:
        raise ValidationFailed.on("slug", f"The slug '{slug.lower()}' is reserved.")
    return slug.lower()


@transaction.atomic
def organization_create(*, name: str, slug: str, owner: User, actor: Any = None) -> Organization:
    """Create an organisation with `owner` as its first owner."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationFailed.on("name", "Use 1 to 100 characters.")
    slug = _clean_slug(slug)
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationFailed.on("slug", f"The slug '{slug}' is taken.")
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, slug=slug)
    except IntegrityError:
        raise ValidationFailed.on("slug", f"The slug '{slug}' is taken.") from None
    membership = Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    who = actor if actor is not None else owner
    audit_record(
        organization_id=organization.pk,
        action="org.created",
        actor=who,
        target=organization,
        changes={
            "name": {"before": None, "after": name},
            "slug": {"before": None, "after": slug},
        },
    )
    audit_record(
        organization_id=organization.pk,
        action="member.added",
        actor=who,
        target=owner,
        changes={"role": {"before": None, "after": membership.role}},
    )
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, actor: Any, **fields: Any) -> Organization:
    """Change the organisation's name or policy fields and record what changed."""
    allowed = {"name", *Organization.POLICY_FIELDS}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValidationFailed(fields={name: ["This field cannot be changed."] for name in unknown})
    cleaned = clean_policy(fields)
    organization = _lock(organization)
    _require(organization, actor, Permission.MANAGE_POLICY)
    before = {name: getattr(organization, name) for name in cleaned}
    changes = diff(before, cleaned)
    if not changes:
        return organization
    for name, value in cleaned.items():
        setattr(organization, name, value)
    organization.save(update_fields=list(changes))
    audit_record(
        organization_id=organization.pk,
        action="org.updated",
        actor=actor,
        target=organization,
        changes=changes,
    )
    hooks.access_changed(organization=organization)  # apikeys forgets its cached keys
    return organization
