"""DefaultKey: the personal key a person gets on joining, shown once on the page they land on."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from apikeys import tokens
from apikeys.models import APIKey
from apikeys.services import DEFAULT_KEY_NAME, DEFAULT_KEY_REASON
from audit.models import AuditEvent
from config.errors import ValidationFailed
from orgs.models import Membership, Organization, User
from orgs.roles import Role
from orgs.services import invitation_create

TOKEN_RE = re.compile(r'id="new-token"[^>]*>([^<]+)<')
PASSWORD = "a fine long password"


def nonce_of(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)


def token_in(response) -> str | None:
    match = TOKEN_RE.search(response.content.decode())
    return match.group(1).strip() if match else None


def sign_up(client: Client, email: str = "new@example.com"):
    """Sign up, then open the emailed link and confirm: return (the landing page, link)."""
    data = {"email": email, "password": PASSWORD, "organization_name": "Fresh Co"}
    with TestCase.captureOnCommitCallbacks(execute=True):  # the email goes on commit
        sent = client.post(reverse("signup"), data)
    assert sent.status_code == 200 and token_in(sent) is None  # nothing minted yet
    body = [m for m in mail.outbox if email in m.to][-1].body
    link = re.search(r"https?://\S+/signup/confirm/\S+/", body).group(0)
    return client.post(link, {"password": PASSWORD}), link


def whoami(token: str):
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_signing_up_shows_the_owners_default_key_once(db):
    client = Client()
    response, link = sign_up(client)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = token_in(response)
    assert token and tokens.looks_like_token(token)
    user = User.objects.get(email="new@example.com")
    key = APIKey.objects.get(owner=user)
    assert key.name == DEFAULT_KEY_NAME and token.startswith(key.prefix)
    assert "admin" not in key.scopes and "keys:write" in key.scopes
    assert whoami(token).status_code == 200
    event = AuditEvent.objects.get(action="api_key.created", target_id=key.id)
    assert (event.actor_type, event.actor_label) == ("user", "new@example.com")
    assert event.changes["reason"]["after"] == DEFAULT_KEY_REASON
    assert token not in str(event.changes)
    assert token not in str(dict(client.session.items()))
    again = client.post(link, {"password": PASSWORD})  # the browser's reload
    assert again.status_code == 404 and token_in(again) is None
    assert APIKey.objects.filter(owner=user).count() == 1


def test_a_failed_default_key_undoes_the_sign_up(db, monkeypatch):
    def fail(**kwargs):
        raise ValidationFailed("No key today.")

    monkeypatch.setattr("orgs.views.api_key_create_default", fail)
    response, _ = sign_up(Client())
    assert response.status_code == 400 and token_in(response) is None
    assert not Organization.objects.filter(name="Fresh Co").exists()
    user = User.objects.get(email="new@example.com")
    assert user.email_verified_at is None  # the confirmation is undone with the key


def accept(org, owner, role: str, *, email: str = "joiner@example.com", client=None):
    _, token = invitation_create(organization=org, email=email, role=role, actor=owner)
    client = client or Client()
    url = reverse("invitation-accept", kwargs={"token": token})
    page = client.get(url)
    data = {"nonce": nonce_of(page)}
    if not User.objects.filter(email=email).exists():
        data["password"] = PASSWORD
    return client.post(url, data), client, url, data


@pytest.mark.parametrize(
    ("role", "members_may", "gets_one"),
    [
        (Role.ADMIN, False, True),
        (Role.MEMBER, True, True),
        (Role.MEMBER, False, False),
        (Role.VIEWER, True, False),
    ],
)
def test_accepting_an_invitation_gives_a_default_key_where_the_role_may_hold_one(
    org, owner, role, members_may, gets_one
):
    Organization.objects.filter(pk=org.pk).update(members_can_create_keys=members_may)
    org.refresh_from_db()
    response, _, _, _ = accept(org, owner, role)
    user = User.objects.get(email="joiner@example.com")
    assert Membership.objects.filter(organization=org, user=user, role=role).exists()
    keys = APIKey.objects.filter(owner=user)
    if not gets_one:
        assert response.status_code == 302 and not keys.exists()
        return
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = token_in(response)
    assert keys.get().name == DEFAULT_KEY_NAME
    assert whoami(token).json()["owner"]["email"] == "joiner@example.com"
    if role == Role.MEMBER:
        assert "keys:write" not in keys.get().scopes


def test_no_default_key_where_the_policy_is_off(org, owner):
    Organization.objects.filter(pk=org.pk).update(default_key_for_new_members=False)
    response, _, _, _ = accept(org, owner, Role.ADMIN)
    assert response.status_code == 302
    assert not APIKey.objects.filter(owner__email="joiner@example.com").exists()


def test_a_person_who_is_logged_in_gets_theirs_too_and_a_reload_mints_nothing(
    org, owner, make_user
):
    person = make_user("joiner@example.com")
    client = Client()
    client.force_login(person)
    response, client, url, data = accept(org, owner, Role.ADMIN, client=client)
    assert token_in(response)
    again = client.post(url, data)
    assert again.status_code in (303, 404) and token_in(again) is None
    assert APIKey.objects.filter(owner=person).count() == 1


def test_the_policy_page_turns_it_off_and_sets_the_new_limits(org, owner):
    client = Client()
    client.force_login(owner)
    url = reverse("policy", kwargs={"slug": org.slug})
    page = client.get(url).content.decode()
    assert 'value="60/min"' in page and "Give new members a DefaultKey" in page
    response = client.post(
        url,
        {
            "dev_rate_limit": "30/min",
            "publishable_rate_limit": "100/h",
            "default_rate_limit": "",
            "max_key_lifetime_days": "",
            "daily_request_quota": "",
        },
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert (org.dev_rate_limit, org.publishable_rate_limit) == ("30/min", "100/h")
    assert org.default_key_for_new_members is False
    event = AuditEvent.objects.filter(organization=org, action="org.updated").latest("seq")
    assert event.changes["dev_rate_limit"] == {"before": "60/min", "after": "30/min"}
    bad = client.post(url, {"dev_rate_limit": "quickly", "publishable_rate_limit": "1/fortnight"})
    assert bad.status_code == 400
    assert "is not a rate" in bad.content.decode()
    org.refresh_from_db()
    assert org.dev_rate_limit == "30/min"
