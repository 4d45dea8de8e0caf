from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from audit.actors import Actor
from orgs.models import Invitation
from orgs.roles import Role
from orgs.selectors import (
    free_slug,
    invitations_pending,
    invitations_unanswered,
    membership_by_slug,
    membership_of,
    memberships_of,
    organization_members,
)
from orgs.services import invitation_accept, invitation_create, invitation_revoke


def test_membership_of_is_none_for_strangers_and_for_what_is_not_a_person(org, owner, make_user):
    assert membership_of(organization=org, user=owner).role == Role.OWNER
    assert membership_of(organization=org, user=make_user()) is None
    assert membership_of(organization=org, user=Actor.system("test")) is None


def test_membership_by_slug_finds_only_the_persons_own_organisation(make_org, owner, org):
    other = make_org("other")
    assert membership_by_slug(user=owner, slug="acme").organization == org
    assert membership_by_slug(user=owner, slug=other.slug) is None
    assert membership_by_slug(user=owner, slug="no-such-org") is None


def test_memberships_of_sorts_by_name_and_is_empty_for_anonymous(make_org, owner, org):
    make_org("beta", owner=owner)
    assert [m.organization.slug for m in memberships_of(owner)] == ["acme", "beta"]
    assert memberships_of(AnonymousUser()) == []


def test_organization_members_are_oldest_first_with_their_people(org, owner, add_member):
    member = add_member(org, Role.MEMBER)
    rows = list(organization_members(organization=org))
    assert [m.user for m in rows] == [owner, member]


def test_pending_invitations_leave_out_accepted_withdrawn_and_expired(org, owner):
    made = {}
    for name in ("accepted", "withdrawn", "expired", "older", "newer"):
        made[name], made[f"{name}-token"] = invitation_create(
            organization=org, email=f"{name}@example.com", role=Role.MEMBER, actor=owner
        )
    invitation_accept(token=made["accepted-token"], password="a long enough password")
    invitation_revoke(invitation=made["withdrawn"], actor=owner)
    Invitation.objects.filter(pk=made["expired"].pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    Invitation.objects.filter(pk=made["older"].pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )

    assert invitations_pending(organization=org) == [made["newer"], made["older"]]
    unanswered = invitations_unanswered(organization=org)
    assert set(unanswered) == {made["expired"], made["older"], made["newer"]}
    assert list(invitations_unanswered(organization=org, email="EXPIRED@example.com")) == [
        made["expired"]
    ]


def test_free_slug_counts_up_past_taken_slugs(make_org):
    make_org("acme-corp")
    make_org("acme-corp-2")
    assert free_slug("Acme Corp") == "acme-corp-3"
    assert free_slug("!!!") == "org"
