"""Hooks through which apps above orgs act on changes in organisations.

orgs sits below apikeys and never imports it (docs/architecture.md; `lint-imports`
holds the order). Where a change here must change something an upper app owns,
an orgs service calls a hook, and the upper app adds its handler from its
`AppConfig.ready()` (see `apikeys/receivers.py`). Hooks, rather than moving the
services up: membership and policy rules stay with orgs, and the keys, their
cache and their revocation stay with apikeys.

A hook calls its handlers at once, inside the service's transaction: what a
handler writes commits or rolls back with the change that called it (a removed
member's personal keys are revoked in the same transaction as the removal), and
a handler that raises undoes the whole change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orgs.models import Organization, User

Handler = Callable[..., Any]

# handler(organization=, user=, actor=): `user` can no longer act in `organization`,
# because they were removed from it or deactivated. Called before the membership goes.
on_member_lost_access: list[Handler] = []

# handler(organization=): a role or the policy changed what the organisation's
# people and keys may do; anything cached about them is stale.
on_access_changed: list[Handler] = []


def register(hook: list[Handler], handler: Handler) -> None:
    """Add `handler` to `hook`, once; call it from an `AppConfig.ready()`."""
    if handler not in hook:
        hook.append(handler)


def member_lost_access(*, organization: Organization, user: User, actor: Any) -> None:
    """Run every `on_member_lost_access` handler, in the caller's transaction."""
    for handler in on_member_lost_access:
        handler(organization=organization, user=user, actor=actor)


def access_changed(*, organization: Organization) -> None:
    """Run every `on_access_changed` handler, in the caller's transaction."""
    for handler in on_access_changed:
        handler(organization=organization)
