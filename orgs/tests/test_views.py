import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from apikeys.models import APIKey
from audit.models import AuditEvent
from orgs.models import Invitation, Membership, Organization, User
from orgs.roles import Role

PASSWORD = "correct horse battery staple"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def nonce_of(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)


def session_nonce(client: Client) -> str:
    """Return the newest form nonce the client's session was given."""
    return client.session["keyward_form_nonces"][-1]


# Getting in


def test_login_with_email_and_password_goes_to_the_keys_page(org, owner):
    client = Client()
    page = client.get(reverse("login"))
    assert b'name="username"' in page.content and b"Email" in page.content
    response = client.post(
        reverse("login"), {"username": owner.email.upper(), "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("keys", kwargs={"slug": org.slug})


def test_home_sends_anonymous_visitors_to_log_in():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"] == reverse("login")


def test_logout_is_a_post(org, owner):
    client = logged_in(owner)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("keys", kwargs={"slug": org.slug})).status_code == 302


def test_ten_failures_lock_the_account_even_with_the_right_password(org, owner):
    client = Client()
    for _ in range(10):
        response = client.post(reverse("login"), {"username": owner.email, "password": "nope"})
        assert b"do not match" in response.content
    response = client.post(reverse("login"), {"username": owner.email, "password": PASSWORD})
    assert response.status_code == 200
    assert b"Too many failed attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_failures_from_one_address_lock_that_address_for_other_accounts(make_user):
    from orgs.throttle import LoginThrottle

    victim = make_user("victim@example.com")
    client = Client(REMOTE_ADDR="198.51.100.7")
    for i in range(LoginThrottle.address_limit):
        client.post(reverse("login"), {"username": f"guess{i}@example.com", "password": "x"})
    response = client.post(reverse("login"), {"username": victim.email, "password": PASSWORD})
    assert b"Too many failed attempts" in response.content
    other = Client(REMOTE_ADDR="198.51.100.8")
    response = other.post(reverse("login"), {"username": victim.email, "password": PASSWORD})
    assert response.status_code == 302


def test_signup_creates_an_owned_organisation_once_the_address_is_confirmed(
    db, django_capture_on_commit_callbacks
):
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("signup"),
            {
                "email": "new@example.com",
                "password": "a fine long password",
                "organization_name": "Acme Ltd",
            },
        )
    assert response.status_code == 200 and not Organization.objects.exists()
    link = re.search(r"https?://\S+/signup/confirm/\S+/", mail.outbox[-1].body).group(0)
    response = client.post(link, {"password": "a fine long password"})
    org = Organization.objects.get(name="Acme Ltd")
    assert response.status_code == 200  # the page that shows the DefaultKey once
    assert reverse("keys", kwargs={"slug": org.slug}) in response.content.decode()
    assert Membership.objects.get(organization=org).role == Role.OWNER
    assert AuditEvent.objects.filter(organization=org, action="org.created").exists()
    assert client.get(reverse("keys", kwargs={"slug": org.slug})).status_code == 200


def test_signup_errors_keep_what_was_typed(make_user):
    make_user("taken@example.com")
    response = Client().post(
        reverse("signup"),
        {"email": "taken@example.com", "password": "password", "organization_name": "Kept Co"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="Kept Co"' in html and 'value="taken@example.com"' in html
    assert "too common" in html
    assert User.objects.count() == 1


def test_password_reset_sends_an_email(org, owner):
    response = Client().post(reverse("password_reset"), {"email": owner.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body


def test_switcher_lists_every_organisation_of_the_person(make_org, owner, org):
    make_org("second", owner=owner)
    html = logged_in(owner).get(reverse("keys", kwargs={"slug": org.slug})).content.decode()
    assert "Second" in html and reverse("org-home", kwargs={"slug": "second"}) in html


# Members and invitations


def members_url(org, *parts):
    return reverse("members", kwargs={"slug": org.slug}) + "".join(f"{p}/" for p in parts)


@pytest.mark.parametrize("name", ["members", "policy", "audit-log"])
def test_settings_pages_are_404_to_outsiders_and_403_to_members(org, add_member, make_user, name):
    url = reverse(name, kwargs={"slug": org.slug})
    assert logged_in(make_user()).get(url).status_code == 404
    assert logged_in(add_member(org, Role.MEMBER)).get(url).status_code == 403
    assert logged_in(add_member(org, Role.ADMIN)).get(url).status_code == 200


def test_unknown_organisation_is_404(owner):
    assert logged_in(owner).get("/orgs/nope/settings/members/").status_code == 404


def test_invite_shows_the_link_once_emails_it_and_records_the_event(
    org, owner, django_capture_on_commit_callbacks
):
    client = logged_in(owner)
    page = client.get(members_url(org))
    data = {"email": "bob@example.com", "role": "member", "nonce": nonce_of(page)}
    with django_capture_on_commit_callbacks(execute=True):
        with_callbacks = client.post(members_url(org, "invite"), data)
    assert with_callbacks.status_code == 200
    assert "no-store" in with_callbacks["Cache-Control"]
    link = re.search(r'id="invitation-link">([^<]+)<', with_callbacks.content.decode()).group(1)
    assert "/invitations/" in link
    assert AuditEvent.objects.filter(organization=org, action="member.invited").exists()
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    assert link not in str(dict(client.session.items()))
    again = client.post(members_url(org, "invite"), data)
    assert again.status_code == 303
    assert Invitation.objects.count() == 1
    assert link not in client.get(members_url(org)).content.decode()


def test_accepting_signs_up_and_joins(org, owner):
    from orgs.services import invitation_create

    _, token = invitation_create(
        organization=org, email="carol@example.com", role="admin", actor=owner
    )
    client = Client()
    page = client.get(reverse("invitation-accept", kwargs={"token": token}))
    assert b"carol@example.com" in page.content and b"Join" in page.content
    response = client.post(
        reverse("invitation-accept", kwargs={"token": token}),
        {"password": "a fine long password", "nonce": nonce_of(page)},
    )
    assert response.status_code == 200  # an admin may hold personal keys: the DefaultKey page
    carol = User.objects.get(email="carol@example.com")
    assert Membership.objects.get(organization=org, user=carol).role == Role.ADMIN
    assert Client().get(reverse("invitation-accept", kwargs={"token": token})).status_code == 404


def test_accepting_while_logged_in_as_the_invited_address(org, owner, make_user):
    from orgs.services import invitation_create

    dave = make_user("dave@example.com")
    _, token = invitation_create(
        organization=org, email="dave@example.com", role="viewer", actor=owner
    )
    anonymous = Client().get(reverse("invitation-accept", kwargs={"token": token}))
    assert b"Log in to accept" in anonymous.content
    client = logged_in(dave)
    page = client.get(reverse("invitation-accept", kwargs={"token": token}))
    response = client.post(
        reverse("invitation-accept", kwargs={"token": token}), {"nonce": nonce_of(page)}
    )
    assert response.status_code == 302  # a viewer holds no personal keys: no DefaultKey
    assert Membership.objects.filter(organization=org, user=dave, role=Role.VIEWER).exists()


def test_someone_else_cannot_accept(org, owner, make_user):
    from orgs.services import invitation_create

    _, token = invitation_create(
        organization=org, email="erin@example.com", role="member", actor=owner
    )
    client = logged_in(make_user())
    client.get(reverse("invitation-accept", kwargs={"token": token}))
    response = client.post(
        reverse("invitation-accept", kwargs={"token": token}), {"nonce": session_nonce(client)}
    )
    assert response.status_code == 400
    assert not Membership.objects.filter(organization=org, role=Role.MEMBER).exists()


def test_forged_invitation_link_is_404(db):
    assert Client().get("/invitations/not-a-real-token/").status_code == 404


def test_change_role_and_remove_revokes_personal_keys(make_org, add_member, make_key):
    org = make_org(members_can_create_keys=True)
    owner = Membership.objects.get(organization=org).user
    member = add_member(org, Role.MEMBER)
    key, _ = make_key(org, owner=member)
    membership = Membership.objects.get(organization=org, user=member)
    client = logged_in(owner)
    client.post(members_url(org, membership.pk, "role"), {f"m{membership.pk}-role": "viewer"})
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    confirm = client.get(members_url(org, membership.pk, "remove"))
    assert member.email in confirm.content.decode() and "1 personal key" in confirm.content.decode()
    client.post(members_url(org, membership.pk, "remove"))
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert APIKey.objects.get(pk=key.pk).revoked_at is not None


def test_admin_cannot_touch_an_owner_and_the_last_owner_stays(org, owner, add_member):
    admin = add_member(org, Role.ADMIN)
    owner_membership = Membership.objects.get(organization=org, user=owner)
    client = logged_in(admin)
    html = client.get(members_url(org)).content.decode()
    assert members_url(org, owner_membership.pk, "remove") not in html
    assert 'value="owner"' not in html
    client.post(members_url(org, owner_membership.pk, "remove"))
    client.post(
        members_url(org, owner_membership.pk, "role"), {f"m{owner_membership.pk}-role": "member"}
    )
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER
    # The owner cannot demote themselves while they are the only one.
    response = logged_in(owner).post(
        members_url(org, owner_membership.pk, "role"),
        {f"m{owner_membership.pk}-role": "admin"},
        follow=True,
    )
    assert "at least one owner" in response.content.decode()
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER


def test_member_actions_need_csrf(org, owner, add_member):
    member = add_member(org)
    membership = Membership.objects.get(organization=org, user=member)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(members_url(org, membership.pk, "remove")).status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


# Policy


def test_policy_saves_through_the_service_and_is_audited(org, owner):
    url = reverse("policy", kwargs={"slug": org.slug})
    response = logged_in(owner).post(
        url,
        {
            "max_key_lifetime_days": "90",
            "members_can_create_keys": "on",
            "daily_request_quota": "",
            "default_rate_limit": "600/min",
        },
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert (org.max_key_lifetime_days, org.members_can_create_keys) == (90, True)
    assert org.default_rate_limit == "600/min"
    assert AuditEvent.objects.filter(organization=org, action="org.updated").exists()


def test_policy_errors_sit_next_to_their_fields_and_keep_values(org, owner):
    url = reverse("policy", kwargs={"slug": org.slug})
    response = logged_in(owner).post(
        url, {"max_key_lifetime_days": "0", "daily_request_quota": "", "default_rate_limit": "fast"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="fast"' in html and 'value="0"' in html
    lifetime_at = html.index('name="max_key_lifetime_days"')
    assert html.index("Enter a number from 1", lifetime_at) < html.index(
        'name="members_can_create_keys"'
    )
    org.refresh_from_db()
    assert org.max_key_lifetime_days is None
