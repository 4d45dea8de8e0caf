"""Writes to organisations and memberships; each records its audit event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.actors import Actor
from audit.services import audit_record, diff
from config.errors import Conflict, Forbidden, NotFound, ValidationFailed
from orgs import invitations, verification
from orgs.models import Invitation, Membership, Organization, User, canonical_email
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


# Fixed addresses under /orgs/ that an organisation's slug would be shadowed by
# (`/orgs/new/` creates an organisation); orgs/tests/test_slugs.py keeps this complete.
RESERVED_SLUGS = frozenset({"new"})


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


def clean_email(email: str) -> str:
    """Return the email in its canonical form (`canonical_email`), or raise ValidationFailed.

    The part before the @ must be ASCII once canonical: Django's validator lets a
    dotless i (U+0131) or a dotted I (U+0130) through (its case-insensitive match
    folds them to "i"), and an account named with one would pass for another's.
    """
    email = (email or "").strip()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed.on("email", "Enter a valid email address.") from None
    email = canonical_email(email)
    if not email.rpartition("@")[0].isascii():
        raise ValidationFailed.on("email", "Enter a valid email address.")
    return email


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
    """Return a slug made from `name` that no organisation uses yet and no page reserves."""
    base = slugify(name)[:40].strip("-") or "org"
    slug, n = base, 1
    while slug in RESERVED_SLUGS or Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def user_create(*, email: str, password: str) -> User:
    """Create a person who logs in with `email` and `password`, their address verified.

    Callers vouch for the address (an invitation link was opened, an operator
    typed it); a sign-up goes through `user_signup` and its confirmation link.
    """
    email = clean_email(email)
    if not isinstance(password, str) or not password:
        raise ValidationFailed.on("password", "Choose a password.")
    if User.objects.filter(email=email).exists():
        raise ValidationFailed.on("email", "An account with this email address exists. Log in.")
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password)
    except IntegrityError:
        raise ValidationFailed.on(
            "email", "An account with this email address exists. Log in."
        ) from None


def _clean_organization_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationFailed.on("organization_name", "Use 1 to 100 characters.")
    return name


def _send_on_commit(subject: str, body: str, to: str) -> None:
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to]))


@transaction.atomic
def user_signup(
    *,
    email: str,
    password: str,
    organization_name: str,
    link_for: Callable[[str], str],
    login_link: str,
    reset_link: str,
) -> None:
    """Start a sign-up: email a confirmation link, or tell an existing account's owner.

    Nobody can use the account, and no organisation exists, until the link is
    opened and the password typed again (`user_email_verify`). The caller shows
    the same answer whatever happened here, and every path costs one password
    hash and one email, so the answer says nothing about who has an account.

    An address that signed up but never confirmed is not anyone's yet: signing
    up again replaces its password and sends a new link, which retires the old.
    """
    email = clean_email(email)
    name = _clean_organization_name(organization_name)
    if not isinstance(password, str) or not password:
        raise ValidationFailed.on("password", "Choose a password.")
    user = User.objects.select_for_update().filter(email=email).first()
    if user is not None and user.is_email_verified:
        make_password(password)  # the same work as the other paths
        _send_on_commit(
            "Your Keyward account",
            "Someone, maybe you, tried to sign up for Keyward with this address. "
            "You already have an account.\n\n"
            f"Log in: {login_link}\nForgot your password? Reset it: {reset_link}\n\n"
            "If it was not you, you can ignore this email: nothing was changed.",
            email,
        )
        return
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    email=email, password=password, email_verified=False
                )
        except IntegrityError:  # the same address signing up at this very moment
            return
    else:
        user.set_password(password)
        user.save(update_fields=["password"])
    link = link_for(verification.make_token(user, name))
    _send_on_commit(
        "Confirm your email address for Keyward",
        f"To finish creating your Keyward account and {name}, open this link within "
        f"3 days and type the password you chose:\n{link}\n\n"
        "The link works once. If you did not sign up, ignore this email: the account "
        "cannot be used without it.",
        email,
    )


@transaction.atomic
def user_email_verify(*, token: str, user: User) -> tuple[User, Organization | None]:
    """Confirm `user`'s address from their sign-up link; create the organisation they asked for.

    The caller has checked the password `user` chose (the link alone is not
    enough: whoever reads the mailbox must also be whoever signed up). The link
    then stops working.
    """
    claim = verification.read_token(token)
    if claim is None or claim.user.pk != user.pk:
        raise NotFound("This link is not valid: it was used, replaced by a newer one, or is old.")
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_email_verified:
        raise NotFound("This link is not valid: it was used, replaced by a newer one, or is old.")
    user.email_verified_at = timezone.now()
    user.save(update_fields=["email_verified_at"])
    organization = None
    if claim.organization_name:
        organization = organization_create(
            name=claim.organization_name,
            slug=free_slug(claim.organization_name),
            owner=user,
            actor=user,
        )
    return user, organization


@transaction.atomic
def user_password_reset_complete(*, user: User) -> User:
    """After a successful password reset: the address is proven, the login locks lift.

    The reset link went to the address, so its reader holds it; and the person
    who knows the new password gets fresh failure counters for the account
    from every address (an address's own counter stays).
    """
    from orgs.throttle import LoginThrottle

    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_email_verified:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    LoginThrottle().forget_account(email=user.email)
    return user


def _pending_invitations(organization: Organization, email: str):
    return Invitation.objects.filter(
        organization=organization,
        email=canonical_email(email),
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
    if Membership.objects.filter(organization=organization, user__email=email).exists():
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


def _invited_user(email: str, password: str) -> User:
    """Return the account an invitation link creates, its address verified by the link.

    An account that signed up with this address but never confirmed it is not
    anyone's yet: the invitation, which proves the address, takes it over with
    the password chosen now.
    """
    pending = User.objects.select_for_update().filter(email=canonical_email(email)).first()
    if pending is None or pending.is_email_verified:
        return user_create(email=email, password=password)
    if not password:
        raise ValidationFailed.on("password", "Choose a password.")
    pending.set_password(password)
    pending.email_verified_at = timezone.now()
    pending.save(update_fields=["password", "email_verified_at"])
    return pending


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
        user = _invited_user(invitation.email, password or "")
    elif canonical_email(user.email) != canonical_email(invitation.email):
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
