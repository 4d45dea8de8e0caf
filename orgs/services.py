"""Writes to organisations and memberships; each records its audit event."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction

from audit.services import audit_record, diff
from config.errors import Conflict, Forbidden, NotFound, ValidationFailed
from orgs.models import Membership, Organization, User
from orgs.roles import Permission, Role, RolePolicy


def organization_lock(organization_id: int) -> Organization:
    """Lock the organisation row for this transaction and return it fresh.

    Every write in an organisation takes this lock first: membership rules,
    key changes and the audit chain then take turns, and a service never
    holds a child row while waiting for its organisation (no deadlock).
    """
    return Organization.objects.select_for_update().get(pk=organization_id)


def _lock(organization: Organization) -> Organization:
    return organization_lock(organization.pk)


def _membership_of(organization: Organization, user: Any) -> Membership | None:
    if not isinstance(user, User):
        return None
    return Membership.objects.filter(organization=organization, user=user).first()


def _require(organization: Organization, actor: Any, permission: Permission) -> RolePolicy:
    """Return the acting person's policy, refusing one without `permission`.

    Only people are weighed against their role: the system (management
    commands) and operators in the admin, passed as an `Actor`, act with full rights.
    """
    if not isinstance(actor, User):
        return organization.policy_for(Role.OWNER)
    membership = _membership_of(organization, actor)
    if membership is None:
        raise NotFound()
    policy = organization.policy_for(membership.role)
    if not policy.can(permission):
        raise Forbidden()
    return policy


def _other_owners(organization: Organization, excluding: Membership) -> int:
    return (
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .exclude(pk=excluding.pk)
        .count()
    )


def _clean_slug(slug: str) -> str:
    try:
        validate_slug(slug)
    except DjangoValidationError:
        raise ValidationFailed.on(
            "slug", "Use letters, numbers, hyphens or underscores only."
        ) from None
    if len(slug) > 50:
        raise ValidationFailed.on("slug", "Use at most 50 characters.")
    return slug.lower()


def clean_email(email: str) -> str:
    """Return the email, normalised to lower case, or raise ValidationFailed."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed.on("email", "Enter a valid email address.") from None
    return User.objects.normalize_email(email).lower()


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
def membership_add(
    *,
    organization: Organization,
    user: User,
    role: str,
    actor: Any,
) -> Membership:
    """Add `user` to the organisation with `role`."""
    if role not in Role.values:
        raise ValidationFailed.on("role", f"Choose one of: {', '.join(Role.values)}.")
    organization = _lock(organization)
    acting = _require(organization, actor, Permission.MANAGE_MEMBERS)
    if not acting.can_assign(role):
        raise Forbidden("Only an owner can make someone an owner.")
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise Conflict(f"{user.email} is already a member.")
    membership = Membership.objects.create(organization=organization, user=user, role=role)
    audit_record(
        organization_id=organization.pk,
        action="member.added",
        actor=actor,
        target=user,
        changes={"role": {"before": None, "after": role}},
    )
    return membership


@transaction.atomic
def membership_role_change(*, membership: Membership, role: str, actor: Any) -> Membership:
    """Give a member another role; the organisation always keeps an owner."""
    if role not in Role.values:
        raise ValidationFailed.on("role", f"Choose one of: {', '.join(Role.values)}.")
    organization = _lock(membership.organization)
    membership = Membership.objects.select_related("user").get(pk=membership.pk)
    acting = _require(organization, actor, Permission.MANAGE_MEMBERS)
    if not (acting.can_manage_member(membership.role) and acting.can_assign(role)):
        raise Forbidden("Only an owner can change an owner or make someone an owner.")
    before = membership.role
    if before == role:
        return membership
    if before == Role.OWNER and _other_owners(organization, membership) == 0:
        raise Conflict("The organisation must keep at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        organization_id=organization.pk,
        action="member.role_changed",
        actor=actor,
        target=membership.user,
        changes={"role": {"before": before, "after": role}},
    )
    _on_access_changed(organization)
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Any) -> None:
    """Remove a member and revoke their personal keys; the last owner stays."""
    organization = _lock(membership.organization)
    try:
        membership = Membership.objects.select_related("user").get(pk=membership.pk)
    except Membership.DoesNotExist:
        raise NotFound() from None
    acting = _require(organization, actor, Permission.MANAGE_MEMBERS)
    if not acting.can_manage_member(membership.role):
        raise Forbidden("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and _other_owners(organization, membership) == 0:
        raise Conflict("The organisation must keep at least one owner.")
    from apikeys.services import api_key_revoke_personal

    api_key_revoke_personal(organization=organization, owner=membership.user, actor=actor)
    user = membership.user
    role = membership.role
    membership.delete()
    audit_record(
        organization_id=organization.pk,
        action="member.removed",
        actor=actor,
        target=user,
        changes={"role": {"before": role, "after": None}},
    )
    _on_access_changed(organization)


@transaction.atomic
def organization_update(*, organization: Organization, actor: Any, **fields: Any) -> Organization:
    """Change the organisation's name or policy fields and record what changed."""
    from orgs.policy import clean_policy

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
    _on_access_changed(organization)
    return organization


@transaction.atomic
def user_deactivate(*, user: User, actor: Any) -> User:
    """Deactivate a person and revoke their personal keys in every organisation."""
    from apikeys.services import api_key_revoke_personal

    user = User.objects.select_for_update().get(pk=user.pk)
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        api_key_revoke_personal(organization=membership.organization, owner=user, actor=actor)
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    return user


def _on_access_changed(organization: Organization) -> None:
    """Tell every process that cached key state for this organisation is stale."""
    from apikeys.cache import invalidate_when_committed

    invalidate_when_committed(organization.pk)
