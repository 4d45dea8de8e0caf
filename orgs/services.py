"""Writes to organisations and memberships; each records its audit event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.actors import Actor
from audit.services import audit_record, diff
from config.errors import Conflict, Forbidden, NotFound, ValidationFailed
from orgs import invitations
from orgs.models import Invitation, Membership, Organization, User
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


def free_slug(name: str) -> str:
    """Return a slug made from `name` that no organisation uses yet."""
    base = slugify(name)[:40].strip("-") or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def user_create(*, email: str, password: str) -> User:
    """Create a person who logs in with `email` and `password`."""
    email = clean_email(email)
    if not isinstance(password, str) or not password:
        raise ValidationFailed.on("password", "Choose a password.")
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationFailed.on("email", "An account with this email address exists. Log in.")
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password)
    except IntegrityError:
        raise ValidationFailed.on(
            "email", "An account with this email address exists. Log in."
        ) from None


@transaction.atomic
def user_signup(
    *, email: str, password: str, organization_name: str, organization_slug: str = ""
) -> tuple[User, Organization]:
    """Create a person and their first organisation, with them as its owner."""
    user = user_create(email=email, password=password)
    slug = organization_slug or free_slug(organization_name)
    organization = organization_create(name=organization_name, slug=slug, owner=user, actor=user)
    return user, organization


def _pending_invitations(organization: Organization, email: str):
    return Invitation.objects.filter(
        organization=organization,
        email__iexact=email,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
    )


@transaction.atomic
def invitation_create(
    *,
    organization: Organization,
    email: str,
    role: str,
    actor: Any,
    link_for: Callable[[str], str] | None = None,
) -> tuple[Invitation, str]:
    """Invite `email` to join with `role`; return the invitation and its one-time token.

    When `link_for` is given, the invitation link it builds from the token is
    emailed once the transaction commits. An earlier pending invitation to the
    same address is withdrawn: one address, one live link.
    """
    email = clean_email(email)
    organization = _lock_to_assign(organization, actor, role)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationFailed.on("email", f"{email} is already a member.")
    now = timezone.now()
    _pending_invitations(organization, email).update(revoked_at=now)
    token = invitations.make_token()
    who = Actor.of(actor)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=invitations.hash_token(token),
        invited_by=actor if isinstance(actor, User) else None,
        invited_by_label=who.label,
        created_at=now,
        expires_at=now + invitations.VALID_FOR,
    )
    audit_record(
        organization_id=organization.pk,
        action="member.invited",
        actor=actor,
        target=invitation,
        changes={
            "email": {"before": None, "after": email},
            "role": {"before": None, "after": role},
        },
    )
    if link_for is not None:
        link = link_for(token)
        subject = f"You are invited to {organization.name} on Keyward"
        body = (
            f"{who.label} invited you to join {organization.name} on Keyward as {role}.\n\n"
            f"Accept the invitation within 7 days:\n{link}\n\n"
            "The link works once. If you did not expect it, ignore this email."
        )
        transaction.on_commit(
            lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
        )
    return invitation, token


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


@transaction.atomic
def invitation_accept(
    *, token: str, user: User | None = None, password: str | None = None
) -> Membership:
    """Join the organisation an invitation names, once.

    The person is `user` (logged in with the invited address) or, when no
    account exists yet, a new one created with the invited address and `password`.
    """
    invitation = invitation_find(token)
    if invitation is None:
        raise NotFound("This invitation link is not valid: it was used, withdrawn or is too old.")
    organization = _lock(invitation.organization)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise NotFound("This invitation link is not valid: it was used, withdrawn or is too old.")
    if user is None:
        user = user_create(email=invitation.email, password=password or "")
    elif user.email.lower() != invitation.email.lower():
        raise Forbidden(f"This invitation is for {invitation.email}.")
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    # The person joins on the strength of the invitation, whose role was weighed
    # against the inviter when it was made; recorded as an Actor (not a User), the
    # newcomer is not checked against a membership they do not hold yet.
    return membership_add(
        organization=organization, user=user, role=invitation.role, actor=Actor.of(user)
    )


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Any) -> Invitation:
    """Withdraw a pending invitation; withdrawing twice changes nothing."""
    organization = _lock(invitation.organization)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    acting = _require(organization, actor, Permission.MANAGE_MEMBERS)
    if not acting.can_assign(invitation.role):
        raise Forbidden("Only an owner can withdraw an invitation to become an owner.")
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        return invitation
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        organization_id=organization.pk,
        action="member.invitation_revoked",
        actor=actor,
        target=invitation,
        changes={"revoked_at": {"before": None, "after": invitation.revoked_at.isoformat()}},
    )
    return invitation
