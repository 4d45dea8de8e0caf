"""Checks of key fields that every caller shares: API, pages, admin and CLI."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apikeys.models import Environment, Kind
from config.errors import ValidationFailed
from config.rates import MalformedRate, parse_rate
from orgs import scopes as scope_registry
from orgs.models import Organization

MAX_ALLOWED_IPS = 100
MAX_GRACE_SECONDS = 7 * 24 * 3600


def clean_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.on("name", "Give the key a name of 1 to 100 characters.")
    value = value.strip()
    if len(value) > 100:
        raise ValidationFailed.on("name", "Use at most 100 characters.")
    if any(ord(ch) < 32 for ch in value):
        raise ValidationFailed.on("name", "The name cannot hold control characters.")
    return value


def clean_scopes(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed.on("scopes", "Give a list of scope names.")
    unknown = scope_registry.unknown_scopes(value)
    if unknown:
        raise ValidationFailed.on("scopes", f"Unknown scope: {', '.join(unknown)}.")
    return scope_registry.ordered(value)


def clean_environment(value: Any) -> str:
    if not isinstance(value, str) or value not in Environment.values:
        raise ValidationFailed.on("environment", "Choose 'live', 'test' or 'dev'.")
    return value


def clean_kind(value: Any) -> str:
    if not isinstance(value, str) or value not in Kind.values:
        raise ValidationFailed.on("kind", "Choose 'secret' or 'publishable'.")
    return value


def check_publishable_scopes(kind: str, scopes: list[str]) -> None:
    """Refuse a publishable key any scope the host has not marked public."""
    if kind != Kind.PUBLISHABLE:
        return
    public = scope_registry.public_scopes()
    private = [s for s in scopes if s not in public]
    if private:
        allowed = ", ".join(scope_registry.ordered(public)) or "none are marked public"
        raise ValidationFailed.on(
            "scopes",
            f"A publishable key may hold only public scopes ({allowed}), not: "
            f"{', '.join(private)}.",
        )
    if not scopes:
        raise ValidationFailed.on("scopes", "Give a publishable key at least one public scope.")


def check_origins_for_kind(kind: str, origins: list[str]) -> None:
    """Require origins of a publishable key, and refuse them on a secret one."""
    if kind == Kind.PUBLISHABLE and not origins:
        raise ValidationFailed.on(
            "allowed_origins",
            "A publishable key needs at least one allowed origin, like https://shop.example.com.",
        )
    if kind != Kind.PUBLISHABLE and origins:
        raise ValidationFailed.on("allowed_origins", "Only publishable keys have allowed origins.")


def clean_allowed_ips(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed.on("allowed_ips", "Give a list of CIDR blocks.")
    if len(value) > MAX_ALLOWED_IPS:
        raise ValidationFailed.on("allowed_ips", f"Give at most {MAX_ALLOWED_IPS} blocks.")
    blocks: list[str] = []
    for entry in value:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=True)
        except ValueError:
            raise ValidationFailed.on(
                "allowed_ips",
                f"'{entry[:60]}' is not a CIDR block (like 203.0.113.0/24 or 2001:db8::/32) "
                "without host bits.",
            ) from None
        if str(network) not in blocks:
            blocks.append(str(network))
    return blocks


def clean_rate_limit(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return parse_rate(value).text
    except MalformedRate as exc:
        raise ValidationFailed.on("rate_limit", str(exc)) from None


def lifetime_cap(organization: Organization, now: datetime) -> datetime | None:
    """Return the latest expiry the organisation allows for a key made at `now`."""
    if organization.max_key_lifetime_days is None:
        return None
    return now + timedelta(days=organization.max_key_lifetime_days)


def clean_expires_at(value: Any, organization: Organization, now: datetime) -> datetime | None:
    """Return a future expiry within the organisation's cap; the cap itself when none is given."""
    cap = lifetime_cap(organization, now)
    if value is None:
        return cap
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise ValidationFailed.on("expires_at", "Give an ISO 8601 time with a time zone.")
    if value <= now:
        raise ValidationFailed.on("expires_at", "The expiry must be in the future.")
    if cap is not None and value > cap:
        raise ValidationFailed.on(
            "expires_at",
            f"The organisation allows keys to live at most "
            f"{organization.max_key_lifetime_days} days.",
        )
    return value


def clean_grace_period(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed.on("grace_period", "Give a whole number of seconds.")
    if not 0 <= value <= MAX_GRACE_SECONDS:
        raise ValidationFailed.on(
            "grace_period",
            f"The grace period is 0 to {MAX_GRACE_SECONDS} seconds (7 days).",
        )
    return value
