"""System checks: no production start without a pepper, and a brand that fits the format."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from apikeys.tokens import BRAND_RE
from orgs.scopes import SCOPE_NAME_RE

MIN_PEPPER_LENGTH = 32


@register(Tags.security, deploy=True)
def check_pepper(app_configs, **kwargs) -> list[Error]:
    """Refuse to deploy without a strong KEYWARD_PEPPER."""
    pepper = getattr(settings, "KEYWARD_PEPPER", "")
    if not pepper or pepper.startswith("insecure-") or len(pepper) < MIN_PEPPER_LENGTH:
        return [
            Error(
                f"KEYWARD_PEPPER must be a random secret of at least {MIN_PEPPER_LENGTH} "
                "characters in production.",
                hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(48))"',
                id="keyward.E001",
            )
        ]
    return []


@register()
def check_brand_and_scopes(app_configs, **kwargs) -> list[Error]:
    """Check KEYWARD_TOKEN_BRAND and the names in KEYWARD_SCOPES."""
    errors = []
    if not BRAND_RE.match(settings.KEYWARD_TOKEN_BRAND):
        errors.append(
            Error("KEYWARD_TOKEN_BRAND must be 2 to 8 lower-case letters.", id="keyward.E003")
        )
    for name in settings.KEYWARD_SCOPES:
        if not SCOPE_NAME_RE.match(name):
            errors.append(
                Error(f"KEYWARD_SCOPES has a malformed name: {name!r}.", id="keyward.E004")
            )
    return errors
