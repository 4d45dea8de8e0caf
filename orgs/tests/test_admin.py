import pytest
from django.urls import reverse

from audit.models import AuditEvent
from orgs.models import Membership, Organization, User
from orgs.roles import Role


@pytest.fixture
def operator(db, client):
    user = User.objects.create_superuser(email="ops@example.com", password="x-strong-passphrase")
    client.force_login(user)
    return user


def test_admin_adds_an_organisation_through_the_service(client, operator):
    client.post(
        reverse("admin:orgs_organization_add"),
        {
            "name": "Initech",
            "slug": "initech",
            "leak_response": "revoke",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    org = Organization.objects.get(slug="initech")
    assert Membership.objects.get(organization=org).user == operator
    created = AuditEvent.objects.get(organization=org, action="org.created")
    assert created.actor_label == "ops@example.com"


def test_admin_membership_role_change_is_audited(client, operator, org, add_member):
    member = add_member(org, Role.MEMBER)
    membership = Membership.objects.get(user=member)
    owner_membership = Membership.objects.get(organization=org, role=Role.OWNER)
    data = {
        "name": org.name,
        "members_can_create_keys": "",
        "leak_response": "revoke",
        "memberships-TOTAL_FORMS": "2",
        "memberships-INITIAL_FORMS": "2",
        "memberships-0-id": owner_membership.pk,
        "memberships-0-organization": org.pk,
        "memberships-0-user": owner_membership.user_id,
        "memberships-0-role": "owner",
        "memberships-1-id": membership.pk,
        "memberships-1-organization": org.pk,
        "memberships-1-user": member.pk,
        "memberships-1-role": "admin",
    }
    client.post(reverse("admin:orgs_organization_change", args=[org.pk]), data)
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    event = AuditEvent.objects.get(organization=org, action="member.role_changed")
    assert event.actor_label == "ops@example.com"


def test_admin_cannot_remove_the_last_owner(client, operator, org):
    owner_membership = Membership.objects.get(organization=org, role=Role.OWNER)
    data = {
        "name": org.name,
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": owner_membership.pk,
        "memberships-0-organization": org.pk,
        "memberships-0-user": owner_membership.user_id,
        "memberships-0-role": "owner",
        "memberships-0-DELETE": "on",
    }
    client.post(reverse("admin:orgs_organization_change", args=[org.pk]), data)
    assert Membership.objects.filter(pk=owner_membership.pk).exists()


def test_audit_events_are_read_only_in_the_admin_even_for_a_superuser(client, operator, org):
    event = AuditEvent.objects.filter(organization=org).first()
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"action": "forged"})
    client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"})
    event.refresh_from_db()
    assert event.action != "forged"
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_person_an_operator_adds_counts_as_verified(client, operator):
    response = client.post(
        reverse("admin:orgs_user_add"),
        {
            "email": "Added@Example.com",
            "password1": "a fine long passphrase",
            "password2": "a fine long passphrase",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    added = User.objects.get(email="added@example.com")
    assert added.email_verified_at is not None


def test_the_admin_login_shares_the_login_throttle(db, make_user):
    from django.test import Client

    victim = make_user("victim@example.com")
    for _ in range(10):
        Client(REMOTE_ADDR="198.51.100.3").post(
            reverse("admin:login"), {"username": victim.email, "password": "guess"}
        )
    page = Client(REMOTE_ADDR="198.51.100.3").post(
        reverse("login"), {"username": victim.email, "password": "correct horse battery staple"}
    )
    assert b"Too many failed attempts" in page.content
