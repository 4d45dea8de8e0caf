"""What apikeys does when orgs announces a change (orgs/hooks.py); connected in `ready()`."""

from __future__ import annotations

from typing import Any

from apikeys.cache import invalidate_when_committed
from apikeys.services import api_key_revoke_personal
from orgs import hooks
from orgs.models import Organization, User


def revoke_personal_keys(*, organization: Organization, user: User, actor: Any) -> None:
    """Revoke the personal keys `user` holds in `organization`: they lost access to it."""
    api_key_revoke_personal(organization=organization, owner=user, actor=actor)


def forget_cached_keys(*, organization: Organization) -> None:
    """Retire every process's cached key state for the organisation, now and on commit."""
    invalidate_when_committed(organization.pk)


def connect_to_orgs() -> None:
    """Register the handlers above with orgs' hooks."""
    hooks.register(hooks.on_member_lost_access, revoke_personal_keys)
    hooks.register(hooks.on_access_changed, forget_cached_keys)
