import pytest

from audit.actors import Actor
from audit.models import AuditEvent
from orgs import hooks
from orgs.models import Membership
from orgs.roles import Role
from orgs.services import (
    membership_remove,
    membership_role_change,
    organization_update,
    user_deactivate,
)

SYSTEM = Actor.system("test")


@pytest.fixture
def heard(monkeypatch):
    """Record every call of both hooks, after the handlers the apps registered."""
    calls = []

    def lost(*, organization, user, actor):
        member = Membership.objects.filter(organization=organization, user=user).exists()
        calls.append(("lost", organization.slug, user.email, actor, member))

    def changed(*, organization):
        calls.append(("changed", organization.slug))

    monkeypatch.setattr(hooks, "on_member_lost_access", [*hooks.on_member_lost_access, lost])
    monkeypatch.setattr(hooks, "on_access_changed", [*hooks.on_access_changed, changed])
    return calls


def test_removal_announces_the_lost_access_while_the_member_is_still_there(org, add_member, heard):
    user = add_member(org, Role.MEMBER)
    membership_remove(membership=Membership.objects.get(user=user), actor=SYSTEM)
    assert heard == [("lost", "acme", user.email, SYSTEM, True), ("changed", "acme")]


def test_deactivation_announces_the_lost_access_in_every_organisation(
    make_org, org, add_member, heard
):
    user = add_member(org, Role.ADMIN)
    add_member(make_org("beta"), Role.VIEWER, user=user)
    user_deactivate(user=user, actor=SYSTEM)
    assert sorted(call[1] for call in heard) == ["acme", "beta"]
    assert {call[0] for call in heard} == {"lost"}


def test_role_and_policy_changes_announce_changed_access_and_no_change_announces_nothing(
    org, owner, add_member, heard
):
    user = add_member(org, Role.MEMBER)
    membership = Membership.objects.get(user=user)
    membership_role_change(membership=membership, role=Role.MEMBER, actor=owner)
    organization_update(organization=org, actor=owner, name=org.name)
    assert heard == []
    membership_role_change(membership=membership, role=Role.VIEWER, actor=owner)
    organization_update(organization=org, actor=owner, daily_request_quota=1000)
    assert heard == [("changed", "acme"), ("changed", "acme")]


def test_a_handler_that_fails_undoes_the_whole_removal(org, add_member, monkeypatch):
    user = add_member(org, Role.MEMBER)

    def refuse(**kwargs):
        raise RuntimeError("the upper app could not do its part")

    monkeypatch.setattr(hooks, "on_member_lost_access", [*hooks.on_member_lost_access, refuse])
    events = AuditEvent.objects.filter(organization=org).count()
    with pytest.raises(RuntimeError):
        membership_remove(membership=Membership.objects.get(user=user), actor=SYSTEM)
    assert Membership.objects.filter(organization=org, user=user).exists()
    assert AuditEvent.objects.filter(organization=org).count() == events


def test_register_adds_a_handler_once():
    hook: list = []

    def handler(**kwargs):
        pass

    hooks.register(hook, handler)
    hooks.register(hook, handler)
    assert hook == [handler]
