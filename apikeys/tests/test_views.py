import re

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from apikeys.models import APIKey
from apikeys.tests.kinds_urls import RESOURCE_TYPES, SCOPES
from audit.models import AuditEvent
from orgs import scopes as scope_registry
from orgs.roles import Role

TOKEN_RE = re.compile(r'id="new-token"[^>]*>([^<]+)<')


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def keys_url(org, *parts):
    base = reverse("keys", kwargs={"slug": org.slug})
    return base + "".join(f"{p}/" for p in parts)


def form_nonce(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)


def create(client, org, **fields):
    page = client.get(keys_url(org, "new"))
    data = {
        "name": "CI",
        "kind": "organization",
        "scopes": ["keys:read"],
        "environment": "live",
        "expiry": "never",
        "nonce": form_nonce(page),
        **fields,
    }
    return client.post(keys_url(org, "new"), data)


def token_in(response) -> str | None:
    match = TOKEN_RE.search(response.content.decode())
    return match.group(1).strip() if match else None


def test_owner_sees_the_table_and_buttons(org, owner, make_key):
    make_key(org, name="Deploy bot")
    response = logged_in(owner).get(keys_url(org))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Deploy bot", "Create key", "Rotate", "Revoke", "keys:read"):
        assert text in html


def test_anonymous_is_sent_to_log_in(org):
    response = Client().get(keys_url(org))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("page", ["", "new/", "KEY/", "KEY/rotate/", "KEY/revoke/"])
def test_outsider_gets_404_on_every_key_page(org, make_org, make_key, make_user, page):
    key, _ = make_key(org)
    stranger = make_user()
    make_org(owner=stranger)
    response = logged_in(stranger).get(keys_url(org) + page.replace("KEY", key.pk))
    assert response.status_code == 404


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_member_without_permission_gets_403(org, add_member, role):
    person = add_member(org, role)
    assert logged_in(person).get(keys_url(org)).status_code == 403
    assert logged_in(person).get(keys_url(org, "new")).status_code == 403


def test_member_sees_only_personal_keys_where_allowed(make_org, add_member, make_key):
    org = make_org(members_can_create_keys=True)
    member = add_member(org, Role.MEMBER)
    make_key(org, name="Organisation secret thing")
    make_key(org, name="Mine", owner=member)
    response = logged_in(member).get(keys_url(org))
    assert response.status_code == 200
    assert "Mine" in response.content.decode()
    assert "Organisation secret thing" not in response.content.decode()


def test_member_cannot_open_an_organisation_key_page(make_org, add_member, make_key):
    org = make_org(members_can_create_keys=True)
    member = add_member(org, Role.MEMBER)
    key, _ = make_key(org)
    assert logged_in(member).get(keys_url(org, key.pk)).status_code == 404
    assert logged_in(member).post(keys_url(org, key.pk, "revoke")).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_member_form_offers_only_grantable_scopes_and_makes_personal_keys(make_org, add_member):
    org = make_org(members_can_create_keys=True)
    member = add_member(org, Role.MEMBER)
    client = logged_in(member)
    html = client.get(keys_url(org, "new")).content.decode()
    assert 'value="keys:read"' in html
    assert 'value="keys:write"' not in html
    assert 'value="admin"' not in html
    response = create(client, org, scopes=["keys:read"])
    assert response.status_code == 200
    key = APIKey.objects.get(organization=org)
    assert key.owner == member


def test_create_shows_the_token_once_with_no_store(org, owner):
    client = logged_in(owner)
    response = create(client, org, name="Deploy", scopes=["keys:read", "usage:read"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = token_in(response)
    key = APIKey.objects.get(organization=org)
    assert token and token.endswith(key.last4) and key.prefix in token
    assert key.scopes == ["keys:read", "usage:read"]
    assert key.owner is None
    assert AuditEvent.objects.filter(action="api_key.created", target_id=key.pk).exists()
    # Never in the session, and never again on any page.
    session_text = str(dict(client.session.items()))
    assert token not in session_text
    assert token[-20:] not in session_text
    assert token not in client.get(keys_url(org)).content.decode()
    assert token not in client.get(keys_url(org, key.pk)).content.decode()


def test_resubmitting_the_same_form_mints_nothing(org, owner):
    client = logged_in(owner)
    page = client.get(keys_url(org, "new"))
    data = {
        "name": "Once",
        "kind": "organization",
        "scopes": ["keys:read"],
        "environment": "live",
        "expiry": "never",
        "nonce": form_nonce(page),
    }
    first = client.post(keys_url(org, "new"), data)
    assert token_in(first)
    again = client.post(keys_url(org, "new"), data)
    assert again.status_code == 303
    assert APIKey.objects.filter(organization=org).count() == 1
    followed = client.get(again["Location"])
    assert "already used" in followed.content.decode()
    assert token_in(followed) is None


def test_a_forged_or_missing_nonce_mints_nothing(org, owner):
    client = logged_in(owner)
    client.get(keys_url(org, "new"))
    data = {"name": "X", "kind": "organization", "scopes": ["keys:read"]}
    data.update(environment="live", expiry="never")
    assert client.post(keys_url(org, "new"), data).status_code == 303
    assert client.post(keys_url(org, "new"), {**data, "nonce": "made-up"}).status_code == 303
    assert not APIKey.objects.exists()


def test_form_errors_sit_next_to_their_field_and_keep_typed_values(org, owner):
    client = logged_in(owner)
    response = create(
        client,
        org,
        name="Kept name",
        allowed_ips="10.0.0.1/8",
        rate_limit="lots",
        scopes=["keys:read", "usage:read"],
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="Kept name"' in html
    assert "10.0.0.1/8" in html
    assert 'value="lots"' in html
    assert re.search(r'value="usage:read"[^>]*checked', html)
    assert "without host bits" in html
    # The error list follows its own field's input.
    ips_at = html.index('name="allowed_ips"')
    assert html.index("without host bits", ips_at) < html.index('name="rate_limit"')
    assert not APIKey.objects.exists()
    # A corrected form goes through with the fresh nonce the error page carries.
    data = {
        "name": "Kept name",
        "kind": "organization",
        "scopes": ["keys:read"],
        "environment": "live",
        "expiry": "never",
        "nonce": form_nonce(response),
    }
    assert token_in(client.post(keys_url(org, "new"), data))


def test_expiry_beyond_the_organisation_cap_is_a_field_error(make_org):
    org = make_org(max_key_lifetime_days=30)
    from orgs.models import Membership

    owner = Membership.objects.get(organization=org).user
    client = logged_in(owner)
    html = client.get(keys_url(org, "new")).content.decode()
    assert 'value="365"' not in html
    response = create(client, org, expiry="date", expiry_date="2999-01-01")
    assert response.status_code == 400
    assert "at most 30 days" in response.content.decode()
    assert not APIKey.objects.exists()


def test_no_scope_chosen_is_a_field_error(org, owner):
    response = create(logged_in(owner), org, scopes=[])
    assert response.status_code == 400
    assert "Choose at least one scope." in response.content.decode()


def test_rotate_with_grace_shows_the_new_token_once(org, owner, make_key):
    key, _ = make_key(org, name="Rotating")
    client = logged_in(owner)
    page = client.get(keys_url(org, key.pk, "rotate"))
    assert "1 hour" in page.content.decode()
    data = {"grace_period": "3600", "nonce": form_nonce(page)}
    response = client.post(keys_url(org, key.pk, "rotate"), data)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key.refresh_from_db()
    assert key.replaced_by is not None
    assert token_in(response).endswith(key.replaced_by.last4)
    again = client.post(keys_url(org, key.pk, "rotate"), data)
    assert again.status_code == 303
    assert APIKey.objects.filter(organization=org).count() == 2


def test_revoke_asks_first_naming_the_key_then_revokes_on_post(org, owner, make_key):
    key, _ = make_key(org, name="Doomed")
    client = logged_in(owner)
    confirm = client.get(keys_url(org, key.pk, "revoke"))
    assert "Doomed" in confirm.content.decode() and key.masked in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None
    response = client.post(keys_url(org, key.pk, "revoke"))
    assert response.status_code == 303
    key.refresh_from_db()
    assert key.revoked_at is not None
    html = client.get(keys_url(org)).content.decode()
    assert "row-finished" in html


def test_state_changes_need_csrf(org, owner, make_key):
    key, _ = make_key(org)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(keys_url(org, key.pk, "revoke")).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_filter_active_hides_revoked_keys(org, owner, make_key):
    from apikeys.services import api_key_revoke

    gone, _ = make_key(org, name="Gone key")
    make_key(org, name="Live key")
    api_key_revoke(key=gone, actor=owner)
    client = logged_in(owner)
    assert "Gone key" in client.get(keys_url(org)).content.decode()
    active = client.get(keys_url(org) + "?show=active").content.decode()
    assert "Gone key" not in active and "Live key" in active


def test_key_page_draws_thirty_days_and_lists_events(org, owner, make_key):
    from datetime import timedelta

    from django.utils import timezone

    from apikeys.models import KeyUsageDay

    key, _ = make_key(org, name="Charted")
    KeyUsageDay.objects.create(
        organization=org, key=key, day=timezone.now().date() - timedelta(days=2), count=42
    )
    html = logged_in(owner).get(keys_url(org, key.pk)).content.decode()
    assert html.count('class="bar"') == 30
    assert "42 requests" in html
    assert "api_key.created" in html


def test_the_table_pages_by_fifty(org, owner, make_key):
    for i in range(51):
        make_key(org, name=f"bulk {i}")
    client = logged_in(owner)
    first = client.get(keys_url(org)).content.decode()
    assert first.count("data-key-id=") == 50 and "Page 1 of 2" in first
    second = client.get(keys_url(org) + "?show=all&page=2").content.decode()
    assert second.count("data-key-id=") == 1


# Kinds of key on the create form

host_registry = override_settings(KEYWARD_SCOPES=SCOPES, KEYWARD_RESOURCE_TYPES=RESOURCE_TYPES)


@host_registry
def test_the_create_form_offers_kinds_origins_dev_and_each_resource(org, owner):
    html = logged_in(owner).get(keys_url(org, "new")).content.decode()
    for text in (
        'name="key_kind"',
        'value="publishable"',
        'name="allowed_origins"',
        'value="dev"',
        'name="resources_things"',
        'value="acme-t2"',
        "Thing 2",
    ):
        assert text in html, text
    assert html.count("data-public-scope") == len(scope_registry.public_scopes())


@host_registry
def test_a_publishable_key_made_on_the_page_can_be_seen_again(org, owner):
    client = logged_in(owner)
    response = create(
        client,
        org,
        name="Widget",
        key_kind="publishable",
        scopes=["embed"],
        allowed_origins="https://shop.example.com\nhttps://*.example.org",
    )
    assert response.status_code == 200
    token = token_in(response)
    key = APIKey.objects.get(name="Widget")
    assert token.startswith(f"kw_pub_live_{key.id}_")
    assert key.allowed_origins == ["https://shop.example.com", "https://*.example.org"]
    assert token in client.get(keys_url(org, key.id)).content.decode()


@host_registry
def test_page_errors_for_a_publishable_key_sit_next_to_their_fields(org, owner):
    response = create(
        logged_in(owner),
        org,
        name="Widget",
        key_kind="publishable",
        scopes=["embed"],
        allowed_origins="https://shop.example.com/path",
    )
    assert response.status_code == 400
    assert "no path" in response.content.decode()
    assert not APIKey.objects.filter(name="Widget").exists()
    response = create(
        logged_in(owner),
        org,
        name="Widget",
        key_kind="publishable",
        scopes=["keys:read"],
        allowed_origins="https://shop.example.com",
    )
    assert response.status_code == 400 and "only public scopes" in response.content.decode()


@host_registry
def test_a_key_limited_by_ticking_a_resource(org, owner):
    client = logged_in(owner)
    response = create(client, org, name="Thing 1 only", resources_things=["acme-t1"])
    assert response.status_code == 200
    key = APIKey.objects.get(name="Thing 1 only")
    assert key.resources == {"things": ["acme-t1"]}
    detail = client.get(keys_url(org, key.id)).content.decode()
    assert "Thing 1" in detail and "Thing 2" not in detail
    refused = create(client, org, name="bogus", resources_things=["acme-t9"])
    assert refused.status_code == 400 and not APIKey.objects.filter(name="bogus").exists()


def test_a_dev_key_made_on_the_page_shows_as_dev(org, owner):
    client = logged_in(owner)
    response = create(client, org, name="Laptop", environment="dev")
    assert response.status_code == 200
    key = APIKey.objects.get(name="Laptop")
    assert token_in(response).startswith(f"kw_dev_{key.id}_")
    listing = client.get(keys_url(org)).content.decode()
    assert "badge-dev" in listing and key.masked in listing
