"""The role table of docs/reference/roles.md: the one place that knows what each role may do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import models

from orgs.scopes import ADMIN_SCOPE, registered_scopes


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# Scopes that read the organisation's record of what happened to every key and person:
# the audit log, and the webhook deliveries that carry the same facts (docs/README-events.md).
RECORD_SCOPES = frozenset({"audit:read", "webhooks:read"})
# Scopes a member's keys can never carry (docs/reference/roles.md, "scope ceiling").
MEMBER_EXCLUDED_SCOPES = frozenset(
    {"keys:write", "members:write", "webhooks:write", ADMIN_SCOPE} | RECORD_SCOPES
)


class Permission(StrEnum):
    MANAGE_ORG_KEYS = "manage_org_keys"
    CREATE_PERSONAL_KEYS = "create_personal_keys"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_OWNERS = "manage_owners"
    READ_AUDIT_LOG = "read_audit_log"
    MANAGE_POLICY = "manage_policy"
    MANAGE_WEBHOOKS = "manage_webhooks"


_GRANTS: dict[str, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission) - {Permission.MANAGE_OWNERS},
    Role.MEMBER: frozenset(),
    Role.VIEWER: frozenset(),
}


@dataclass(frozen=True)
class RolePolicy:
    """What one role may do in one organisation."""

    role: str
    members_can_create_keys: bool = False

    def can(self, permission: Permission) -> bool:
        """Return whether this role holds `permission`."""
        if permission == Permission.CREATE_PERSONAL_KEYS and self.role == Role.MEMBER:
            return self.members_can_create_keys
        return permission in _GRANTS.get(self.role, frozenset())

    def can_manage_member(self, target_role: str) -> bool:
        """Return whether this role may change or remove a member holding `target_role`."""
        if not self.can(Permission.MANAGE_MEMBERS):
            return False
        return target_role != Role.OWNER or self.can(Permission.MANAGE_OWNERS)

    def can_assign(self, new_role: str) -> bool:
        """Return whether this role may give someone `new_role`."""
        if not self.can(Permission.MANAGE_MEMBERS):
            return False
        return new_role != Role.OWNER or self.can(Permission.MANAGE_OWNERS)


def scope_ceiling(role: str | None) -> frozenset[str]:
    """Return the scopes a person of `role` may hold on keys, against the registry."""
    registry = registered_scopes()
    if role in (Role.OWNER, Role.ADMIN):
        return frozenset(registry)
    if role == Role.MEMBER:
        return frozenset(registry) - MEMBER_EXCLUDED_SCOPES
    if role == Role.VIEWER:
        return frozenset(
            name for name in registry if name.endswith(":read") and name not in RECORD_SCOPES
        )
    return frozenset()
