import pytest
from django.test import override_settings
from django.urls import reverse

from apikeys.models import APIKey
from apikeys.tests.kinds_urls import RESOURCE_TYPES, SCOPES
from audit.models import AuditEvent
from orgs.models import User


@pytest.fixture
def operator(db, client):
    user = User.objects.create_superuser(email="ops@example.com", password="x-strong-passphrase")
    client.force_login(user)
    return user


def test_admin_lists_keys_masked_without_hash(client, operator, org, make_key):
    key, token = make_key(org, name="listed key")
    page = client.get(reverse("admin:apikeys_apikey_changelist")).content.decode()
    assert key.masked in page and "listed key" in page
    assert key.secret_hash not in page and token not in page
    detail = client.get(reverse("admin:apikeys_apikey_change", args=[key.pk])).content.decode()
    assert key.secret_hash not in detail


def test_admin_creates_through_the_service_and_shows_the_token_once(client, operator, org):
    response = client.post(
        reverse("admin:apikeys_apikey_add"),
        {
            "organization": org.pk,
            "name": "from admin",
            "environment": "live",
            "scopes": ["keys:read"],
            "allowed_ips": "",
            "rate_limit": "",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = APIKey.objects.get(name="from admin")
    page = response.content.decode()
    assert key.prefix in page and "will not be shown again" in page
    event = AuditEvent.objects.get(action="api_key.created", target_id=key.id)
    assert (event.actor_type, event.actor_label) == ("user", "ops@example.com")
    session_text = str(dict(client.session))
    assert key.prefix + "_" not in session_text


def test_admin_refuses_bad_input_with_an_error_and_saves_nothing(client, operator, org):
    client.post(
        reverse("admin:apikeys_apikey_add"),
        {"organization": org.pk, "name": "bad", "environment": "live", "rate_limit": "often"},
    )
    assert not APIKey.objects.filter(name="bad").exists()


def test_admin_revoke_action(client, operator, org, make_key):
    key, _ = make_key(org)
    client.post(
        reverse("admin:apikeys_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk]},
    )
    assert APIKey.objects.get(pk=key.pk).revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.id).exists()


def test_admin_cannot_delete_keys(client, operator, org, make_key):
    key, _ = make_key(org)
    response = client.post(reverse("admin:apikeys_apikey_delete", args=[key.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert APIKey.objects.filter(pk=key.pk).exists()


def test_admin_scope_edit_goes_through_the_service(client, operator, org, make_key):
    key, _ = make_key(org, scopes=["keys:read"], name="edit me")
    url = reverse("admin:apikeys_apikey_change", args=[key.pk])
    client.post(
        url,
        {
            "name": "edited",
            "scopes": ["keys:read", "usage:read"],
            "allowed_ips": "",
            "rate_limit": "",
        },
    )
    key.refresh_from_db()
    assert key.name == "edited" and key.scopes == ["keys:read", "usage:read"]
    assert AuditEvent.objects.filter(action="api_key.updated", target_id=key.id).exists()


@override_settings(KEYWARD_SCOPES=SCOPES, KEYWARD_RESOURCE_TYPES=RESOURCE_TYPES)
def test_admin_creates_a_publishable_dev_key_and_filters_by_kind_and_environment(
    client, operator, org
):
    response = client.post(
        reverse("admin:apikeys_apikey_add"),
        {
            "organization": org.pk,
            "name": "widget from admin",
            "kind": "publishable",
            "environment": "dev",
            "scopes": ["embed"],
            "allowed_origins": "https://shop.example.com\nhttps://*.example.org",
            "resources": "null",
            "allowed_ips": "",
            "rate_limit": "",
        },
    )
    assert response.status_code == 200, response.content
    key = APIKey.objects.get(name="widget from admin")
    assert (key.kind, key.environment) == ("publishable", "dev")
    assert key.allowed_origins == ["https://shop.example.com", "https://*.example.org"]
    assert key.prefix.startswith("kw_pub_dev_") and key.prefix in response.content.decode()
    changelist = reverse("admin:apikeys_apikey_changelist")
    assert key.masked in client.get(changelist, {"kind": "publishable"}).content.decode()
    assert key.masked not in client.get(changelist, {"kind": "secret"}).content.decode()
    assert key.masked in client.get(changelist, {"environment": "dev"}).content.decode()
    assert key.masked not in client.get(changelist, {"environment": "live"}).content.decode()


@override_settings(KEYWARD_SCOPES=SCOPES, KEYWARD_RESOURCE_TYPES=RESOURCE_TYPES)
def test_admin_limits_a_key_to_resources_and_refuses_foreign_ones(client, operator, org, make_org):
    make_org("theirs")
    add = reverse("admin:apikeys_apikey_add")
    fields = {
        "organization": org.pk,
        "kind": "secret",
        "environment": "live",
        "scopes": ["keys:read"],
        "allowed_ips": "",
        "allowed_origins": "",
        "rate_limit": "",
    }
    client.post(add, {**fields, "name": "foreign", "resources": '{"things": ["theirs-t1"]}'})
    assert not APIKey.objects.filter(name="foreign").exists()
    client.post(add, {**fields, "name": "one thing", "resources": '{"things": ["acme-t1"]}'})
    key = APIKey.objects.get(name="one thing")
    assert key.resources == {"things": ["acme-t1"]}
    client.post(
        reverse("admin:apikeys_apikey_change", args=[key.pk]),
        {
            "name": "one thing",
            "scopes": ["keys:read"],
            "allowed_ips": "",
            "allowed_origins": "",
            "resources": "null",
            "rate_limit": "",
        },
    )
    key.refresh_from_db()
    assert key.resources is None
    event = AuditEvent.objects.get(action="api_key.updated", target_id=key.id)
    assert event.changes["resources"] == {"before": {"things": ["acme-t1"]}, "after": None}
