"""The `bots` resource type, as registered in KEYWARD_RESOURCE_TYPES."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from demo.models import Bot
from orgs.models import Organization


def bots_of(
    organization: Organization, *, user: Any = None, ids: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """Return (id, name) of the organisation's bots; every member may reach every bot."""
    bots = Bot.objects.filter(organization=organization)
    if ids is not None:
        bots = bots.filter(pk__in=list(ids))
    return list(bots.order_by("name", "id").values_list("id", "name"))
