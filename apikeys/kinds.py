"""What a key's kind and environment decide on each request, in one place.

Authentication asks `refusal()` once per request, after a key's secret, status
and address have passed: a publishable key works only on views that accept one
(`allow_publishable_keys = True`) and only from an origin it lists. The
throttles ask `organization_rate_limit()` and `counts_against_quota()`.
"""

from __future__ import annotations

from typing import Any

from apikeys.models import APIKey, Environment
from apikeys.origins import origin_allowed, request_origin
from config.errors import KeywardError, OriginNotAllowed, PublishableKeyNotAllowed

QUOTA_ENVIRONMENTS = frozenset({Environment.LIVE, Environment.DEV})


def accepts_publishable_keys(view: Any) -> bool:
    """Return whether a view lets publishable keys in (`allow_publishable_keys = True`)."""
    return getattr(view, "allow_publishable_keys", False) is True


def refusal(request: Any, key: APIKey) -> KeywardError | None:
    """Return why `key` may not serve this request because of its kind, or None.

    A publishable key's matching origin is left on the request
    (`keyward_cors_origin`) for the CORS middleware (apikeys/cors.py).
    """
    if not key.is_publishable:
        return None
    view = (getattr(request, "parser_context", None) or {}).get("view")
    if view is None or not accepts_publishable_keys(view):
        return PublishableKeyNotAllowed()
    target = getattr(request, "_request", request)
    origin = request_origin(target.META)
    if not origin_allowed(origin, key.allowed_origins):
        return OriginNotAllowed()
    target.keyward_cors_origin = origin
    return None


def organization_rate_limit(key: APIKey) -> str | None:
    """Return the organisation's rate for a key without its own: dev keys have their own."""
    organization = key.organization
    if key.environment == Environment.DEV and organization.dev_rate_limit:
        return organization.dev_rate_limit
    return organization.default_rate_limit


def counts_against_quota(key: APIKey) -> bool:
    """Return whether the key's requests count against the daily quota: live and dev do."""
    return key.environment in QUOTA_ENVIRONMENTS
