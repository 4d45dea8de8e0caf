"""Writes to people: sign-up, accounts and deactivation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import NotFound, ValidationFailed
from orgs import hooks, verification
from orgs.models import Membership, Organization, User, canonical_email
from orgs.selectors import free_slug
from orgs.services.organizations import organization_create


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


@transaction.atomic
def user_deactivate(*, user: User, actor: Any) -> User:
    """Deactivate a person and revoke their personal keys in every organisation."""
    user = User.objects.select_for_update().get(pk=user.pk)
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        # apikeys revokes their personal keys here, in this transaction (orgs/hooks.py).
        hooks.member_lost_access(organization=membership.organization, user=user, actor=actor)
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    return user
