"""Writes to invitations: invite by email, accept once, withdraw."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from config.errors import Forbidden, NotFound, ValidationFailed
from orgs import invitations
from orgs.models import Invitation, Membership, Organization, User, canonical_email
from orgs.roles import Permission
from orgs.selectors import invitation_find, invitations_unanswered
from orgs.services.memberships import _lock_to_assign, membership_add
from orgs.services.organizations import _lock, _require
from orgs.services.users import clean_email, user_create


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
    invitations_unanswered(organization=organization, email=email).update(revoked_at=now)
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
