"""The scope registry: KEYWARD_SCOPES, in order, with `admin` granting every scope.

Each entry maps a name to its description, or to `{"description": …, "public": True}`
for a scope that publishable keys may hold (docs/README-kinds.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

ADMIN_SCOPE = "admin"
SCOPE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)?$")


def _description(entry: Any) -> str:
    if isinstance(entry, Mapping):
        return str(entry.get("description", ""))
    return str(entry)


def registered_scopes() -> dict[str, str]:
    """Return the registry: scope name to description, in the order of the setting."""
    return {name: _description(entry) for name, entry in settings.KEYWARD_SCOPES.items()}


def public_scopes() -> frozenset[str]:
    """Return the scopes the host marks public: the only ones a publishable key may hold."""
    return frozenset(
        name
        for name, entry in settings.KEYWARD_SCOPES.items()
        if isinstance(entry, Mapping) and entry.get("public") is True
    )


def unknown_scopes(names: Iterable[str]) -> list[str]:
    """Return the names that are not in the registry, in the order given."""
    registry = registered_scopes()
    return [name for name in names if name not in registry]


def expand(names: Iterable[str]) -> frozenset[str]:
    """Return the scopes that `names` grant: `admin` grants every registered scope."""
    held = frozenset(names)
    if ADMIN_SCOPE in held:
        return frozenset(registered_scopes())
    return held


def ordered(names: Iterable[str]) -> list[str]:
    """Return `names` in registry order, unknown names last and sorted."""
    registry = list(registered_scopes())
    wanted = set(names)
    known = [name for name in registry if name in wanted]
    return known + sorted(wanted - set(registry))
