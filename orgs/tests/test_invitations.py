from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from config.errors import Forbidden, NotFound, ValidationFailed
from orgs.models import Invitation, Membership
from orgs.roles import Role
from orgs.services import invitation_accept, invitation_create, invitation_find, invitation_revoke


def test_invitation_stores_only_a_hash_and_records_member_invited(org, owner):
    invitation, token = invitation_create(
        organization=org, email="New@Example.com", role=Role.MEMBER, actor=owner
    )
    invitation.refresh_from_db()
    assert invitation.email == "new@example.com"
    assert token not in str(Invitation.objects.values().get(pk=invitation.pk))
    event = AuditEvent.objects.get(organization=org, action="member.invited")
    assert event.target_label == "new@example.com"
    assert token not in str(event.changes)


def test_invitation_email_is_sent_on_commit(org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _, token = invitation_create(
            organization=org,
            email="new@example.com",
            role=Role.MEMBER,
            actor=owner,
            link_for=lambda t: f"https://keyward.test/invitations/{t}/",
        )
    assert len(mail.outbox) == 1
    assert f"/invitations/{token}/" in mail.outbox[0].body


def test_accept_joins_once(org, owner, make_user):
    _, token = invitation_create(organization=org, email="b@example.com", role="admin", actor=owner)
    bob = make_user("b@example.com")
    membership = invitation_accept(token=token, user=bob)
    assert membership.role == Role.ADMIN
    assert invitation_find(token) is None
    with pytest.raises(NotFound):
        invitation_accept(token=token, user=bob)


def test_accept_with_signup_creates_the_account(org, owner):
    _, token = invitation_create(
        organization=org, email="c@example.com", role="viewer", actor=owner
    )
    membership = invitation_accept(token=token, password="a long enough password")
    assert membership.user.email == "c@example.com"
    assert membership.user.check_password("a long enough password")


def test_accept_refuses_another_address(org, owner, make_user):
    _, token = invitation_create(
        organization=org, email="d@example.com", role="member", actor=owner
    )
    with pytest.raises(Forbidden):
        invitation_accept(token=token, user=make_user("eve@example.com"))
    assert not Membership.objects.filter(user__email="eve@example.com").exists()


def test_expired_or_tampered_or_withdrawn_tokens_open_nothing(org, owner):
    invitation, token = invitation_create(
        organization=org, email="e@example.com", role="member", actor=owner
    )
    assert invitation_find(token + "x") is None
    assert invitation_find(token[:-1]) is None
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(1))
    assert invitation_find(token) is None
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(1))
    invitation_revoke(invitation=invitation, actor=owner)
    assert invitation_find(token) is None


def test_a_new_invitation_withdraws_the_previous_one(org, owner):
    _, first = invitation_create(
        organization=org, email="f@example.com", role="member", actor=owner
    )
    _, second = invitation_create(
        organization=org, email="f@example.com", role="admin", actor=owner
    )
    assert invitation_find(first) is None
    assert invitation_find(second).role == Role.ADMIN


def test_admin_cannot_invite_an_owner_and_members_cannot_invite(org, add_member):
    admin = add_member(org, Role.ADMIN)
    member = add_member(org, Role.MEMBER)
    with pytest.raises(Forbidden):
        invitation_create(organization=org, email="g@example.com", role="owner", actor=admin)
    with pytest.raises(Forbidden):
        invitation_create(organization=org, email="g@example.com", role="viewer", actor=member)
    assert not Invitation.objects.exists()


def test_inviting_a_member_is_a_field_error(org, owner):
    with pytest.raises(ValidationFailed) as error:
        invitation_create(organization=org, email=owner.email, role="member", actor=owner)
    assert "email" in error.value.extra["fields"]
