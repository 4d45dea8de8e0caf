import pytest
from django.test import override_settings

from orgs.roles import Permission, Role, RolePolicy, scope_ceiling

ALL = {
    "keys:read",
    "keys:write",
    "members:read",
    "members:write",
    "audit:read",
    "usage:read",
    "webhooks:read",
    "webhooks:write",
    "admin",
}


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (Role.OWNER, Permission.MANAGE_ORG_KEYS, True),
        (Role.ADMIN, Permission.MANAGE_ORG_KEYS, True),
        (Role.MEMBER, Permission.MANAGE_ORG_KEYS, False),
        (Role.VIEWER, Permission.MANAGE_ORG_KEYS, False),
        (Role.OWNER, Permission.CREATE_PERSONAL_KEYS, True),
        (Role.ADMIN, Permission.CREATE_PERSONAL_KEYS, True),
        (Role.VIEWER, Permission.CREATE_PERSONAL_KEYS, False),
        (Role.OWNER, Permission.MANAGE_MEMBERS, True),
        (Role.ADMIN, Permission.MANAGE_MEMBERS, True),
        (Role.MEMBER, Permission.MANAGE_MEMBERS, False),
        (Role.VIEWER, Permission.MANAGE_MEMBERS, False),
        (Role.OWNER, Permission.MANAGE_OWNERS, True),
        (Role.ADMIN, Permission.MANAGE_OWNERS, False),
        (Role.OWNER, Permission.READ_AUDIT_LOG, True),
        (Role.ADMIN, Permission.READ_AUDIT_LOG, True),
        (Role.MEMBER, Permission.READ_AUDIT_LOG, False),
        (Role.VIEWER, Permission.READ_AUDIT_LOG, False),
        (Role.OWNER, Permission.MANAGE_WEBHOOKS, True),
        (Role.ADMIN, Permission.MANAGE_WEBHOOKS, True),
        (Role.MEMBER, Permission.MANAGE_WEBHOOKS, False),
        (Role.VIEWER, Permission.MANAGE_WEBHOOKS, False),
    ],
)
def test_role_table(role, permission, allowed):
    assert RolePolicy(role=role).can(permission) is allowed


@pytest.mark.parametrize("allowed", [True, False])
def test_members_create_personal_keys_only_where_the_org_allows(allowed):
    policy = RolePolicy(role=Role.MEMBER, members_can_create_keys=allowed)
    assert policy.can(Permission.CREATE_PERSONAL_KEYS) is allowed


def test_admins_cannot_touch_owners_but_owners_can():
    admin, owner = RolePolicy(role=Role.ADMIN), RolePolicy(role=Role.OWNER)
    assert admin.can_manage_member(Role.MEMBER) and admin.can_manage_member(Role.ADMIN)
    assert not admin.can_manage_member(Role.OWNER)
    assert not admin.can_assign(Role.OWNER)
    assert owner.can_manage_member(Role.OWNER) and owner.can_assign(Role.OWNER)


# Keyward's own scopes, without those a host (or the demo product) adds.
CORE_REGISTRY = {name: name for name in ALL}


@override_settings(KEYWARD_SCOPES=CORE_REGISTRY)
def test_scope_ceilings_follow_the_design_table():
    assert scope_ceiling(Role.OWNER) == ALL
    assert scope_ceiling(Role.ADMIN) == ALL
    assert scope_ceiling(Role.MEMBER) == {"keys:read", "members:read", "usage:read"}
    assert scope_ceiling(Role.VIEWER) == {"keys:read", "members:read", "usage:read"}
    assert scope_ceiling(None) == frozenset()
    # Webhook deliveries carry what the audit log does: owners and admins only.
    for role in (Role.MEMBER, Role.VIEWER):
        assert not {"webhooks:read", "webhooks:write"} & scope_ceiling(role)


def test_ceilings_are_expressed_against_the_registry():
    registry = {"bots:read": "Read bots.", "bots:write": "Change bots.", "audit:read": "Audit."}
    with override_settings(KEYWARD_SCOPES=registry):
        assert scope_ceiling(Role.MEMBER) == {"bots:read", "bots:write"}
        assert scope_ceiling(Role.VIEWER) == {"bots:read"}
        assert scope_ceiling(Role.ADMIN) == set(registry)
