"""People, organisations and the memberships that join them."""

from __future__ import annotations

import unicodedata

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from audit.actors import Target
from orgs.roles import Role, RolePolicy


def canonical_email(address: str) -> str:
    """Return the one form of an email address that is stored, looked up and throttled.

    NFKC, then lower case, the whole address. Lookups compare this form exactly and
    never through the database's own case folding, which differs by database:
    PostgreSQL's UPPER() turns a dotless i (U+0131) into "I", so `vic@` spelt with a
    dotless i matched `vic@` there; SQLite's LIKE folds ASCII only; Python's lower()
    neither.
    """
    return unicodedata.normalize("NFKC", (address or "").strip()).lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """Return the address in its canonical form (see `canonical_email`)."""
        return canonical_email(email or "")

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email=canonical_email(username))

    def _create_user(
        self, email: str, password: str | None, *, email_verified: bool, **extra
    ) -> User:
        if not email:
            raise ValueError("An email address is required.")
        if email_verified:
            extra.setdefault("email_verified_at", timezone.now())
        user = self.model(email=canonical_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(
        self, email: str, password: str | None = None, *, email_verified: bool = True, **extra
    ) -> User:
        """Create a person; one created by code or an operator counts as verified.

        Sign-up is the path that creates people who must still confirm their
        address; it passes `email_verified=False`.
        """
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, email_verified=email_verified, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, email_verified=True, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address and a password."""

    email = models.EmailField("email address", max_length=254, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    # When the person proved they read this address (a sign-up link, an invitation,
    # a password reset); null until then, and they cannot log in (orgs/backends.py).
    email_verified_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="orgs_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = canonical_email(self.email)

    @property
    def is_email_verified(self) -> bool:
        """Return whether the person has proved they read their address."""
        return self.email_verified_at is not None

    def get_full_name(self) -> str:
        """Return the full name, or the email when there is none."""
        return self.full_name or self.email

    def get_short_name(self) -> str:
        """Return the full name, or the email when there is none."""
        return self.get_full_name()

    @property
    def audit_target(self) -> Target:
        """Return how the audit log names this user."""
        return Target("user", str(self.pk), self.email)


class LeakResponse(models.TextChoices):
    REVOKE = "revoke", "Revoke the key at once"
    NOTIFY = "notify", "Leave the key active, flag it and tell people"


class Organization(models.Model):
    """A customer account: it owns keys and members, and sets their policy."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    members_can_create_keys = models.BooleanField(default=False)
    max_key_lifetime_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    daily_request_quota = models.PositiveBigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    default_rate_limit = models.CharField(max_length=32, null=True, blank=True)
    leak_response = models.CharField(
        max_length=8, choices=LeakResponse.choices, default=LeakResponse.REVOKE
    )
    email_notices = models.BooleanField(
        default=True,
        help_text="Email people when keys are about to expire, expire, leak or are attacked.",
    )
    dev_rate_limit = models.CharField(
        max_length=32,
        null=True,
        blank=True,
        default="60/min",
        help_text="Dev keys without their own limit; empty = the default rate limit.",
    )
    publishable_rate_limit = models.CharField(
        max_length=32,
        null=True,
        blank=True,
        default="60/min",
        help_text="Each publishable key, per client address; empty = no such limit.",
    )
    default_key_for_new_members = models.BooleanField(
        default=True,
        help_text="Give each person who joins, and may hold personal keys, a DefaultKey.",
    )

    POLICY_FIELDS = (
        "members_can_create_keys",
        "max_key_lifetime_days",
        "daily_request_quota",
        "default_rate_limit",
        "leak_response",
        "email_notices",
        "dev_rate_limit",
        "publishable_rate_limit",
        "default_key_for_new_members",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_key_lifetime_days__isnull=True)
                | models.Q(max_key_lifetime_days__gte=1),
                name="orgs_org_lifetime_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(daily_request_quota__isnull=True)
                | models.Q(daily_request_quota__gte=1),
                name="orgs_org_quota_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_target(self) -> Target:
        """Return how the audit log names this organisation."""
        return Target("organization", str(self.pk), self.slug)

    def policy_for(self, role: str) -> RolePolicy:
        """Return what a person of `role` may do here."""
        return RolePolicy(role=role, members_can_create_keys=self.members_can_create_keys)


class Membership(models.Model):
    """A person's role in one organisation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="orgs_membership_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values),
                name="orgs_membership_role_valid",
            ),
        ]
        indexes = [models.Index(fields=["organization", "role"], name="orgs_member_org_role")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.organization}"

    @property
    def policy(self) -> RolePolicy:
        """Return what this member may do in the organisation."""
        return self.organization.policy_for(self.role)


class Invitation(models.Model):
    """An offer to join an organisation; only a hash of its one-time token is kept."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    invited_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values),
                name="orgs_invitation_role_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(token_hash__regex=r"^[0-9a-f]{64}$"),  # noqa: S106
                name="orgs_invitation_hash_format",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="orgs_invite_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.role}) to {self.organization}"

    def is_pending_at(self, now) -> bool:
        """Return whether the invitation can still be accepted at `now`."""
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now

    @property
    def is_pending(self) -> bool:
        return self.is_pending_at(timezone.now())

    @property
    def audit_target(self) -> Target:
        """Return how the audit log names the invited person (never the token)."""
        return Target("invitation", str(self.pk), self.email)
