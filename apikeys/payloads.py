"""The key object as the API shows it, for the API and for webhook payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apikeys.models import APIKey


def iso(value: datetime | None) -> str | None:
    """Return an ISO 8601 time in UTC with a `Z`, or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def key_payload(key: APIKey) -> dict[str, Any]:
    """Return the key object the API shows; it never holds the token or its hash."""
    owner = key.owner if key.owner_id else None
    return {
        "id": key.id,
        "prefix": key.prefix,
        "last4": key.last4,
        "name": key.name,
        "kind": key.kind,
        "environment": key.environment,
        "scopes": list(key.scopes),
        "status": key.status,
        "owner": {"id": str(owner.pk), "email": owner.email} if owner else None,
        "created_by": key.created_by_payload,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "replaced_by": key.replaced_by_id,
        "last_used_at": iso(key.last_used_at),
        "last_used_ip": key.last_used_ip,
        "usage_count": key.usage_count,
        "allowed_ips": list(key.allowed_ips),
        "allowed_origins": list(key.allowed_origins),
        "resources": key.resources,
        "rate_limit": key.rate_limit,
    }
