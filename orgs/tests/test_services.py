import threading

import pytest
from django.db import connection, transaction

from audit.actors import Actor
from audit.models import AuditEvent
from config.errors import Conflict, Forbidden, NotFound, ValidationFailed
from orgs.models import Membership, Organization
from orgs.roles import Role
from orgs.services import (
    membership_add,
    membership_remove,
    membership_role_change,
    organization_create,
    organization_update,
)


def actions(organization):
    return list(
        AuditEvent.objects.filter(organization=organization)
        .order_by("seq")
        .values_list("action", flat=True)
    )


def test_creator_becomes_owner_and_both_events_are_recorded(make_user):
    alice = make_user("alice@example.com")
    org = organization_create(name="Acme", slug="acme", owner=alice)
    assert Membership.objects.get(organization=org, user=alice).role == Role.OWNER
    assert actions(org) == ["org.created", "member.added"]
    created = AuditEvent.objects.get(organization=org, action="org.created")
    assert (created.actor_type, created.actor_id, created.actor_label) == (
        "user",
        str(alice.pk),
        "alice@example.com",
    )


@pytest.mark.parametrize("slug", ["", "has space", "ünïcode", "x" * 51, "semi;colon"])
def test_bad_slug_is_refused_and_creates_nothing(make_user, slug):
    with pytest.raises(ValidationFailed) as error:
        organization_create(name="Acme", slug=slug, owner=make_user())
    assert "slug" in error.value.extra["fields"]
    assert not Organization.objects.exists()


def test_taken_slug_is_refused(make_org, make_user):
    make_org("acme")
    with pytest.raises(ValidationFailed):
        organization_create(name="Other", slug="ACME", owner=make_user())
    assert Organization.objects.count() == 1


def test_member_added_changed_and_removed_with_events(org, owner, make_user):
    bob = make_user()
    membership = membership_add(organization=org, user=bob, role=Role.MEMBER, actor=owner)
    membership_role_change(membership=membership, role=Role.ADMIN, actor=owner)
    membership_remove(membership=membership, actor=owner)
    assert not Membership.objects.filter(user=bob).exists()
    assert actions(org)[-3:] == ["member.added", "member.role_changed", "member.removed"]
    changed = AuditEvent.objects.get(organization=org, action="member.role_changed")
    assert changed.changes == {"role": {"before": "member", "after": "admin"}}
    assert changed.target_label == bob.email


def test_last_owner_cannot_be_demoted_or_removed(org, owner):
    membership = Membership.objects.get(organization=org, user=owner)
    events = AuditEvent.objects.count()
    with pytest.raises(Conflict):
        membership_role_change(membership=membership, role=Role.ADMIN, actor=owner)
    with pytest.raises(Conflict):
        membership_remove(membership=membership, actor=owner)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert AuditEvent.objects.count() == events


def test_second_owner_makes_demotion_possible(org, owner, add_member):
    add_member(org, Role.OWNER)
    membership = Membership.objects.get(organization=org, user=owner)
    membership_role_change(membership=membership, role=Role.ADMIN, actor=owner)
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1


def test_admins_cannot_touch_owners_or_make_them(org, owner, add_member):
    admin = add_member(org, Role.ADMIN)
    member = add_member(org, Role.MEMBER)
    owner_membership = Membership.objects.get(organization=org, user=owner)
    with pytest.raises(Forbidden):
        membership_remove(membership=owner_membership, actor=admin)
    with pytest.raises(Forbidden):
        membership_role_change(
            membership=Membership.objects.get(user=member), role=Role.OWNER, actor=admin
        )
    membership_role_change(
        membership=Membership.objects.get(user=member), role=Role.VIEWER, actor=admin
    )


def test_members_cannot_manage_members_and_strangers_see_nothing(org, add_member, make_user):
    member = add_member(org, Role.MEMBER)
    with pytest.raises(Forbidden):
        membership_add(organization=org, user=make_user(), role=Role.VIEWER, actor=member)
    with pytest.raises(NotFound):
        membership_add(organization=org, user=make_user(), role=Role.VIEWER, actor=make_user())


def test_unknown_role_is_a_validation_error(org, owner, make_user):
    with pytest.raises(ValidationFailed):
        membership_add(organization=org, user=make_user(), role="emperor", actor=owner)


def test_rollback_leaves_neither_change_nor_event(org, owner, make_user):
    bob = make_user()
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        membership_add(organization=org, user=bob, role=Role.MEMBER, actor=owner)
        raise RuntimeError("the caller's transaction fails after the service")
    assert not Membership.objects.filter(user=bob).exists()
    assert AuditEvent.objects.count() == before


def test_policy_update_records_before_and_after(org, owner):
    organization_update(organization=org, actor=owner, max_key_lifetime_days=90)
    event = AuditEvent.objects.filter(organization=org, action="org.updated").get()
    assert event.changes == {"max_key_lifetime_days": {"before": None, "after": 90}}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_key_lifetime_days", -1),
        ("daily_request_quota", -5),
        ("daily_request_quota", "many"),
        ("default_rate_limit", "0/min"),
        ("default_rate_limit", "10/fortnight"),
        ("members_can_create_keys", "yes"),
    ],
)
def test_bad_policy_values_are_refused_and_nothing_saved(org, owner, field, value):
    with pytest.raises(ValidationFailed) as error:
        organization_update(organization=org, actor=owner, **{field: value})
    assert field in error.value.extra["fields"]
    assert not AuditEvent.objects.filter(action="org.updated").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["demote", "remove"])
def test_two_owners_leaving_at_once_leave_one_owner(make_org, add_member, operation):
    """Two requests demote (or remove) the last two owners at the same moment."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises every write")
    org = make_org("race")
    add_member(org, Role.OWNER)
    owners = list(Membership.objects.filter(organization=org, role=Role.OWNER))
    assert len(owners) == 2
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def leave(membership):
        try:
            barrier.wait()
            if operation == "demote":
                membership_role_change(
                    membership=membership, role=Role.ADMIN, actor=Actor.system("race")
                )
            else:
                membership_remove(membership=membership, actor=Actor.system("race"))
            outcomes.append("done")
        except Conflict:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=leave, args=(m,)) for m in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["done", "refused"]
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1
