"""Resource-limited keys: the types a host registers, and checking a key's `resources`.

`KEYWARD_RESOURCE_TYPES` maps a type name (`"bots"`) to the dotted path of a
function `list_resources(organization, *, user=None, ids=None)` that returns
the organisation's resources of that type as `(id, name)` pairs. `user` is the
owner of a personal key (return only what that person may reach) and `ids`,
when given, the ids being checked (the function may return only those). The
create form lists the pairs as checkboxes; validation refuses any id not among
them. A key's `resources` is `None` (not limited) or `{"bots": ["id", …]}`; a
limited key reaches nothing of a type it does not name (docs/README-kinds.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.module_loading import import_string

from config.errors import ValidationFailed

MAX_IDS_PER_TYPE = 1000
MAX_ID_LENGTH = 100

ResourceLister = Callable[..., Iterable[tuple[Any, str]]]


def resource_types() -> dict[str, ResourceLister]:
    """Return the registered types, each with its listing function, in the setting's order."""
    registry = getattr(settings, "KEYWARD_RESOURCE_TYPES", {}) or {}
    return {name: _lister(path) for name, path in registry.items()}


_listers: dict[str, ResourceLister] = {}


def _lister(path: Any) -> ResourceLister:
    if callable(path):
        return path
    found = _listers.get(path)
    if found is None:
        found = _listers[path] = import_string(path)
    return found


def resource_choices(
    organization: Any, resource_type: str, *, user: Any = None, ids: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """Return `(id, name)` of the organisation's resources of a type (the person's, if given)."""
    lister = resource_types()[resource_type]
    wanted = None if ids is None else sorted(set(ids))
    return [(str(rid), str(name)) for rid, name in lister(organization, user=user, ids=wanted)]


def clean_resources_shape(value: Any) -> dict[str, list[str]] | None:
    """Return `resources` checked for shape and types, or raise ValidationFailed.

    Whether the ids exist in the organisation is `check_resource_ids`'s question,
    asked once the key's owner is known.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed.on(
            "resources", 'Give an object like {"bots": ["id", …]}, or null for no limit.'
        )
    if not value:
        raise ValidationFailed.on(
            "resources", "Name at least one resource type, or send null for no limit."
        )
    registered = resource_types()
    cleaned: dict[str, list[str]] = {}
    for name, ids in value.items():
        if name not in registered:
            known = ", ".join(registered) or "none are registered"
            shown = str(name)[:60] if str(name).isprintable() else "(unprintable)"
            raise ValidationFailed.on(
                "resources", f"Unknown resource type: {shown} (known: {known})."
            )
        if not isinstance(ids, list) or not ids:
            raise ValidationFailed.on("resources", f"Give {name} as a non-empty list of ids.")
        if len(ids) > MAX_IDS_PER_TYPE:
            raise ValidationFailed.on(
                "resources", f"Give at most {MAX_IDS_PER_TYPE} ids of {name}."
            )
        if not all(
            isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH and i.isprintable() for i in ids
        ):
            raise ValidationFailed.on(
                "resources",
                f"Each id of {name} is printable text of 1 to {MAX_ID_LENGTH} characters.",
            )
        cleaned[name] = sorted(set(ids))
    return {name: cleaned[name] for name in registered if name in cleaned}


def check_resource_ids(
    resources: dict[str, list[str]] | None, *, organization: Any, owner: Any = None
) -> None:
    """Refuse ids that are not the organisation's (or, for a personal key, not its owner's)."""
    if resources is None:
        return
    for name, ids in resources.items():
        known = {rid for rid, _name in resource_choices(organization, name, user=owner, ids=ids)}
        unknown = [i for i in ids if i not in known]
        if unknown:
            shown = ", ".join(i[:40] for i in unknown[:10])
            raise ValidationFailed.on("resources", f"No such {name} here: {shown}.")


def beyond(
    resources: dict[str, list[str]] | None, ceiling: dict[str, list[str]] | None
) -> dict[str, list[str]]:
    """Return what `resources` reaches outside `ceiling` (a creating key's own limit)."""
    if ceiling is None:
        return {}
    if resources is None:
        return {name: ["*"] for name in resource_types()} or {"*": ["*"]}
    outside: dict[str, list[str]] = {}
    for name, ids in resources.items():
        allowed = set(ceiling.get(name, ()))
        extra = [i for i in ids if i not in allowed]
        if extra:
            outside[name] = extra
    return outside


def filter_allowed(queryset: QuerySet, key: Any, resource_type: str, field: str = "pk") -> QuerySet:
    """Return `queryset` narrowed to what `key` may reach of `resource_type`.

    Use it on listings: `filter_allowed(Bot.objects.filter(...), request.auth, "bots")`.
    Anything that is not a limited key (no key, a session user) leaves it unchanged.
    """
    resources = getattr(key, "resources", None)
    if resources is None:
        return queryset
    return queryset.filter(**{f"{field}__in": list(resources.get(resource_type, ()))})
