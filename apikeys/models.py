"""API keys: public id, keyed hash, scopes, limits and lifecycle timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apikeys import tokens
from audit.actors import Target
from orgs import scopes as scope_registry
from orgs.roles import scope_ceiling


class Environment(models.TextChoices):
    LIVE = "live", "Live"
    TEST = "test", "Test"
    DEV = "dev", "Dev"


class Kind(models.TextChoices):
    SECRET = "secret", "Secret"
    PUBLISHABLE = "publishable", "Publishable"


class Status(models.TextChoices):
    ACTIVE = "active", "Active"
    SUPERSEDED = "superseded", "Superseded"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class APIKey(models.Model):
    """A key an organisation's programs authenticate with; its token is never stored."""

    id = models.CharField(primary_key=True, max_length=tokens.KEY_ID_LENGTH, editable=False)
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="api_keys"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="personal_api_keys",
        help_text="The person a personal key belongs to; empty for an organisation key.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by_key = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_type = models.CharField(max_length=16, default="system")
    created_by_label = models.CharField(max_length=254, blank=True)
    name = models.CharField(max_length=100)
    environment = models.CharField(
        max_length=4, choices=Environment.choices, default=Environment.LIVE
    )
    kind = models.CharField(max_length=11, choices=Kind.choices, default=Kind.SECRET)
    scopes = models.JSONField(default=list)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    leaked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the key was reported as found in public (see docs/leaks.md).",
    )
    revoked_by = models.CharField(max_length=254, blank=True)
    replaced_by = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaces",
    )
    allowed_ips = models.JSONField(default=list, blank=True)
    allowed_origins = models.JSONField(
        default=list, blank=True, help_text="A publishable key's web origins; empty otherwise."
    )
    resources = models.JSONField(
        null=True,
        blank=True,
        help_text='The resources the key is limited to, like {"bots": ["bot_1"]}; empty = all.',
    )
    rate_limit = models.CharField(max_length=32, null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    usage_count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=Q(environment__in=Environment.values),
                name="apikeys_environment_valid",
            ),
            models.CheckConstraint(condition=Q(kind__in=Kind.values), name="apikeys_kind_valid"),
            models.CheckConstraint(
                condition=Q(name__regex=r"^.{1,100}$") & ~Q(name=""),
                name="apikeys_name_length",
            ),
            models.CheckConstraint(
                condition=Q(id__regex=r"^[0-9A-Za-z]{12}$"), name="apikeys_id_format"
            ),
            models.CheckConstraint(
                condition=Q(secret_hash__regex=r"^[0-9a-f]{64}$"),  # noqa: S106
                name="apikeys_hash_format",
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | Q(revoked_at__gte=models.F("created_at")),
                name="apikeys_revoked_after_created",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "-created_at", "-id"],
                name="apikeys_org_created",
            ),
            models.Index(fields=["owner", "organization"], name="apikeys_owner_org"),
            # CORS preflights ask whether any live publishable key lists an origin.
            models.Index(
                fields=["kind"],
                name="apikeys_publishable",
                condition=Q(kind="publishable", revoked_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def prefix(self) -> str:
        """Return the public prefix, `kw_live_<key_id>` (`kw_pub_live_<key_id>` if publishable)."""
        return tokens.prefix_of(
            environment=self.environment, key_id=self.id, publishable=self.is_publishable
        )

    @property
    def is_publishable(self) -> bool:
        return self.kind == Kind.PUBLISHABLE

    @property
    def masked(self) -> str:
        return tokens.masked(self.prefix, self.last4)

    @property
    def is_personal(self) -> bool:
        return self.owner_id is not None

    def status_at(self, now: datetime) -> str:
        """Return the derived status at `now`."""
        if self.revoked_at is not None:
            return Status.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return Status.EXPIRED
        if self.replaced_by_id is not None:
            return Status.SUPERSEDED
        return Status.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())

    @property
    def audit_target(self) -> Target:
        """Return how the audit log names this key (never its token or hash)."""
        return Target("api_key", self.id, f"{self.name} ({self.prefix})")

    def allows(self, resource_type: str, resource_id: Any) -> bool:
        """Return whether this key may reach one resource: always, unless it is limited.

        A limited key reaches only the ids it lists, and nothing of a type it does
        not name.
        """
        if self.resources is None:
            return True
        return str(resource_id) in self.resources.get(resource_type, ())

    def effective_scopes_for(self, owner_role: str | None) -> frozenset[str]:
        """Return the scopes this key grants, given its owner's current role.

        A publishable key grants only scopes that are public now: a scope the host
        stops marking public stops working for it at once.
        """
        granted = scope_registry.expand(self.scopes)
        if self.kind == Kind.PUBLISHABLE:
            granted &= scope_registry.public_scopes()
        if self.owner_id is None:
            return granted
        return granted & scope_ceiling(owner_role)

    @property
    def effective_scopes(self) -> frozenset[str]:
        """Return the scopes in force now; set by authentication, else read from the database."""
        cached = getattr(self, "_effective_scopes", None)
        if cached is not None:
            return cached
        role = None
        if self.owner_id is not None:
            from orgs.models import Membership

            role = (
                Membership.objects.filter(
                    user_id=self.owner_id, organization_id=self.organization_id
                )
                .values_list("role", flat=True)
                .first()
            )
        return self.effective_scopes_for(role)

    @property
    def created_by_payload(self) -> dict:
        """Return who created the key as the API shows it: type, id and label."""
        if self.created_by_type == "api_key":
            return {
                "type": "api_key",
                "id": self.created_by_key_id,
                "label": self.created_by_label,
            }
        if self.created_by_type == "user":
            user_id = str(self.created_by_id) if self.created_by_id else None
            return {"type": "user", "id": user_id, "label": self.created_by_label}
        return {"type": "system", "id": None, "label": self.created_by_label}

    def audit_snapshot(self) -> dict:
        """Return the fields the audit log compares before and after a change."""
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "allowed_ips": list(self.allowed_ips),
            "allowed_origins": list(self.allowed_origins),
            "resources": self.resources,
            "rate_limit": self.rate_limit,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


class PublishableToken(models.Model):
    """The token of a publishable key, kept so that its page can show it again.

    Only publishable keys have one: their tokens sit in web pages by design
    (docs/README-kinds.md). It lives apart from the key so that authentication,
    and the cache of verified keys, never load it. Revoking the key deletes it.
    """

    key = models.OneToOneField(
        APIKey, primary_key=True, on_delete=models.CASCADE, related_name="publishable_token"
    )
    token = models.CharField(max_length=tokens.MAX_TOKEN_LENGTH)

    class Meta:
        verbose_name = "publishable key token"

    def __str__(self) -> str:
        return f"token of {self.key_id}"


class KeyUsageDay(models.Model):
    """Requests one key made on one UTC day, written in batches (never per request)."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="+"
    )
    key = models.ForeignKey(APIKey, on_delete=models.PROTECT, related_name="usage_days")
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "day"], name="apikeys_usage_key_day"),
        ]
        indexes = [models.Index(fields=["organization", "day"], name="apikeys_usage_org_day")]

    def __str__(self) -> str:
        return f"{self.key_id} on {self.day}: {self.count}"


class FailedKeyAttempts(models.Model):
    """Invalid keys presented from one client address in one minute, for operators.

    Written in batches by each process, at most once per address per minute,
    so that an attack does not turn into a database write per request.
    """

    address = models.CharField(
        max_length=64, help_text="An IPv4 address, or the /64 network of an IPv6 one."
    )
    minute = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "failed key attempts"
        verbose_name_plural = "failed key attempts"
        constraints = [
            models.UniqueConstraint(
                fields=["address", "minute"], name="apikeys_failed_address_minute"
            ),
        ]
        indexes = [models.Index(fields=["minute"], name="apikeys_failed_minute")]

    def __str__(self) -> str:
        return f"{self.address} at {self.minute:%Y-%m-%d %H:%M}: {self.count}"


class KeyActivity(models.Model):
    """What one key was used for in one hour: from where, on which route, with what answer.

    Gathered in memory by each process and written with the usage batches
    (apikeys/activity.py), never a write per request; kept 30 days. Refused
    presentations of a known key (wrong secret, revoked, expired) count too:
    they are what an investigation of a leak looks for.
    """

    OTHER_ADDRESSES = "other"

    key = models.ForeignKey(APIKey, on_delete=models.CASCADE, related_name="activity")
    hour = models.DateTimeField(help_text="The start of the UTC hour.")
    address = models.CharField(
        max_length=64, help_text='The client address, or "other" past 100 in one hour.'
    )
    route = models.CharField(max_length=200, help_text="The URL pattern, not the raw path.")
    outcome = models.CharField(max_length=64, help_text='"allowed", or the error code.')
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "key activity"
        constraints = [
            models.UniqueConstraint(
                fields=["key", "hour", "address", "route", "outcome"],
                name="apikeys_activity_unique",
            ),
        ]
        indexes = [models.Index(fields=["hour"], name="apikeys_activity_hour")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.hour:%Y-%m-%d %H:00} {self.address} {self.route}"
