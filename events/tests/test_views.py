"""The webhooks settings page and the policy switch, through Django's test client."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from events.models import WebhookEndpoint
from events.services import webhook_endpoint_create
from events.tests.conftest import SYSTEM
from orgs.roles import Role

PASSWORD = "correct horse battery staple"


@pytest.fixture
def logged_in(client):
    def log_in(user):
        assert client.login(email=user.email, password=PASSWORD)
        return client

    return log_in


def page(org, rest=""):
    return f"/orgs/{org.slug}/settings/webhooks/{rest}"


def nonce(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)


@pytest.mark.django_db
def test_who_may_open_the_page(client, logged_in, org, owner, add_member, make_org, make_user):
    assert client.get(page(org)).status_code == 302  # to log in
    for role, status in [(Role.ADMIN, 200), (Role.MEMBER, 403), (Role.VIEWER, 403)]:
        client.logout()
        assert logged_in(add_member(org, role)).get(page(org)).status_code == status, role
    client.logout()
    stranger = make_user()
    make_org("elsewhere", owner=stranger)
    assert logged_in(stranger).get(page(org)).status_code == 404
    client.logout()
    response = logged_in(owner).get(f"/orgs/{org.slug}/settings/api-keys/")
    assert f'href="{page(org)}"' in response.content.decode()  # the tab


@pytest.mark.django_db
def test_members_do_not_see_the_tab(client, logged_in, org, add_member):
    org.members_can_create_keys = True
    org.save()
    response = logged_in(add_member(org, Role.MEMBER)).get(f"/orgs/{org.slug}/settings/api-keys/")
    assert response.status_code == 200
    assert page(org) not in response.content.decode()


@pytest.mark.django_db
def test_adding_an_endpoint_shows_its_secret_once(client, logged_in, org, owner, loopback):
    c = logged_in(owner)
    form = c.get(page(org, "new/"))
    body = {"url": "https://hooks.example.com/in", "events": ["api_key.revoked"]}
    loopback.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True  # no DNS in tests
    response = c.post(page(org, "new/"), {**body, "nonce": nonce(form)})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", response.content.decode()).group(0)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["api_key.revoked"]
    # The same form again (a reload, the back button): nothing new, no secret.
    again = c.post(page(org, "new/"), {**body, "nonce": nonce(form)}, follow=True)
    assert WebhookEndpoint.objects.count() == 1
    assert "whsec_" not in again.content.decode()
    assert secret not in c.get(page(org)).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/", "https://"),
        ("http://127.0.0.1/", "loopback"),
        ("https://user:pw@hooks.example.com/", "credentials"),
    ],
)
def test_a_bad_url_is_shown_under_its_field_and_nothing_is_saved(
    client, logged_in, org, owner, settings, url, message
):
    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    c = logged_in(owner)
    form = c.get(page(org, "new/"))
    response = c.post(page(org, "new/"), {"url": url, "nonce": nonce(form)})
    assert response.status_code == 400
    html = response.content.decode()
    field = html.split('for="id_url"')[1].split("</div>")[0]
    assert "field-errors" in field and message in field
    assert f'value="{url}"' in html  # kept what was typed
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_edit_rotate_and_delete_from_the_page(client, logged_in, org, owner, loopback):
    endpoint, first_secret = webhook_endpoint_create(
        organization=org, actor=SYSTEM, url="https://hooks.example.com/"
    )
    c = logged_in(owner)
    listing = c.get(page(org))
    assert endpoint.url in listing.content.decode()
    response = c.post(
        page(org, f"{endpoint.pk}/edit/"),
        {"url": endpoint.url, "description": "Ops", "events": ["member.added"]},
    )
    assert response.status_code == 303
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.events, endpoint.description) == (
        False,  # the checkbox was left unticked
        ["member.added"],
        "Ops",
    )
    rotated = c.post(page(org, f"{endpoint.pk}/rotate-secret/"), {"nonce": nonce(listing)})
    assert rotated.status_code == 200 and "no-store" in rotated["Cache-Control"]
    second = re.search(r"whsec_[A-Za-z0-9+/=]+", rotated.content.decode()).group(0)
    assert second != first_secret and "24 hours" in rotated.content.decode()
    replay = c.post(page(org, f"{endpoint.pk}/rotate-secret/"), {"nonce": nonce(listing)})
    assert replay.status_code == 303  # the used nonce rotates nothing more
    assert AuditEvent.objects.filter(action="webhook.secret_rotated").count() == 1
    assert c.get(page(org, f"{endpoint.pk}/delete/")).status_code == 200
    assert c.post(page(org, f"{endpoint.pk}/delete/")).status_code == 303
    assert not WebhookEndpoint.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook.created", "webhook.updated", "webhook.deleted"} <= actions


@pytest.mark.django_db
def test_another_organisations_endpoint_is_not_found_from_the_page(
    client, logged_in, org, owner, make_org, loopback
):
    other = make_org("other-corp")
    theirs, _ = webhook_endpoint_create(
        organization=other, actor=SYSTEM, url="https://hooks.example.com/"
    )
    c = logged_in(owner)
    for rest in ("edit/", "delete/"):
        assert c.get(page(org, f"{theirs.pk}/{rest}")).status_code == 404
    for rest in ("test/", "rotate-secret/", "delete/"):
        assert c.post(page(org, f"{theirs.pk}/{rest}")).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
def test_the_policy_page_turns_email_notices_off(client, logged_in, org, owner):
    c = logged_in(owner)
    response = c.get(f"/orgs/{org.slug}/settings/policy/")
    assert "Email notices" in response.content.decode()
    assert 'name="email_notices"' in response.content.decode()
    saved = c.post(f"/orgs/{org.slug}/settings/policy/", {})  # every box unticked
    assert saved.status_code == 302
    org.refresh_from_db()
    assert org.email_notices is False
    change = AuditEvent.objects.filter(action="org.updated").latest("seq")
    assert change.changes["email_notices"] == {"before": True, "after": False}
