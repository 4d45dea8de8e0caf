import pytest
from django.urls import reverse

from apikeys.models import APIKey
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
