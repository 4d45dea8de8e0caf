import pytest

from apikeys import receivers
from apikeys.models import APIKey
from audit.actors import Actor
from orgs import hooks
from orgs.models import Membership
from orgs.roles import Role
from orgs.services import membership_remove
from orgs.services import memberships as membership_services

SYSTEM = Actor.system("test")


def test_apikeys_handlers_are_registered_with_orgs_hooks():
    assert receivers.revoke_personal_keys in hooks.on_member_lost_access
    assert receivers.forget_cached_keys in hooks.on_access_changed


def test_keys_revoked_for_a_removal_that_fails_later_are_live_again(
    org, add_member, make_key, monkeypatch
):
    user = add_member(org, Role.ADMIN)
    key, _ = make_key(org, actor=user, owner=user)
    original = membership_services.audit_record

    def fail_on_removal(**kwargs):
        if kwargs["action"] == "member.removed":
            raise RuntimeError("the removal fails after the keys were revoked")
        return original(**kwargs)

    monkeypatch.setattr(membership_services, "audit_record", fail_on_removal)
    with pytest.raises(RuntimeError):
        membership_remove(membership=Membership.objects.get(user=user), actor=SYSTEM)
    assert APIKey.objects.get(pk=key.pk).revoked_at is None
    assert Membership.objects.filter(organization=org, user=user).exists()
