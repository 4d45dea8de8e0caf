"""Writes to memberships: add a member, change their role, remove them."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import audit_record
from config.errors import Conflict, Forbidden, NotFound, ValidationFailed
from orgs import hooks
from orgs.models import Membership, Organization, User
from orgs.roles import Permission, Role
from orgs.services.organizations import _lock, _require


def _lock_to_assign(organization: Organization, actor: Any, role: str) -> Organization:
    """Check that `actor` may give someone `role`, with the organisation locked."""
    if role not in Role.values:
        raise ValidationFailed.on("role", f"Choose one of: {', '.join(Role.values)}.")
    organization = _lock(organization)
    if not _require(organization, actor, Permission.MANAGE_MEMBERS).can_assign(role):
        raise Forbidden("Only an owner can make someone an owner.")
    return organization


def _other_owners(organization: Organization, excluding: Membership) -> int:
    return (
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .exclude(pk=excluding.pk)
        .count()
    )


@transaction.atomic
def membership_add(
    *,
    organization: Organization,
    user: User,
    role: str,
    actor: Any,
) -> Membership:
    """Add `user` to the organisation with `role`."""
    organization = _lock_to_assign(organization, actor, role)
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
    hooks.access_changed(organization=organization)  # apikeys forgets its cached keys
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
    # apikeys revokes their personal keys here, in this transaction (orgs/hooks.py).
    hooks.member_lost_access(organization=organization, user=membership.user, actor=actor)
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
    hooks.access_changed(organization=organization)
