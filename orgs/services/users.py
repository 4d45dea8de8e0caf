"""Writes to people: sign-up, accounts and deactivation."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from config.errors import ValidationFailed
from orgs import hooks
from orgs.models import Membership, Organization, User
from orgs.selectors import free_slug
from orgs.services.organizations import organization_create


def clean_email(email: str) -> str:
    """Return the email, normalised to lower case, or raise ValidationFailed."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed.on("email", "Enter a valid email address.") from None
    return User.objects.normalize_email(email).lower()


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
