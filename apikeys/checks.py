"""System checks: no production start without a pepper; a brand, scopes and resource types
that fit their formats."""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.utils.module_loading import import_string

from apikeys.tokens import BRAND_RE
from orgs.scopes import ADMIN_SCOPE, SCOPE_NAME_RE

RESOURCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")

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
    for name, entry in settings.KEYWARD_SCOPES.items():
        if not SCOPE_NAME_RE.match(name):
            errors.append(
                Error(f"KEYWARD_SCOPES has a malformed name: {name!r}.", id="keyward.E004")
            )
        if isinstance(entry, Mapping):
            public = entry.get("public", False)
            if not isinstance(entry.get("description", ""), str) or not isinstance(public, bool):
                errors.append(
                    Error(
                        f"KEYWARD_SCOPES[{name!r}] must map to a description, or to "
                        '{"description": str, "public": bool}.',
                        id="keyward.E005",
                    )
                )
            elif public and name == ADMIN_SCOPE:
                errors.append(Error("The admin scope cannot be public.", id="keyward.E005"))
        elif not isinstance(entry, str):
            errors.append(
                Error(f"KEYWARD_SCOPES[{name!r}] must be a description.", id="keyward.E005")
            )
    return errors


@register()
def check_resource_types(app_configs, **kwargs) -> list[Error]:
    """Check that each KEYWARD_RESOURCE_TYPES entry names a function that can be imported."""
    errors = []
    for name, path in (getattr(settings, "KEYWARD_RESOURCE_TYPES", {}) or {}).items():
        if not isinstance(name, str) or not RESOURCE_TYPE_RE.match(name):
            errors.append(
                Error(f"KEYWARD_RESOURCE_TYPES has a malformed name: {name!r}.", id="keyward.E006")
            )
            continue
        try:
            lister = path if callable(path) else import_string(path)
        except (ImportError, TypeError, ValueError) as exc:
            errors.append(Error(f"KEYWARD_RESOURCE_TYPES[{name!r}]: {exc}", id="keyward.E006"))
            continue
        if not callable(lister):
            errors.append(
                Error(f"KEYWARD_RESOURCE_TYPES[{name!r}] is not a function.", id="keyward.E006")
            )
    return errors
