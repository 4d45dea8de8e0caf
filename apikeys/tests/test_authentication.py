from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys import tokens
from apikeys.models import APIKey
from apikeys.services import api_key_revoke, api_key_rotate, api_key_update
from audit.actors import Actor
from orgs.models import Membership
from orgs.roles import Role
from orgs.services import membership_remove, membership_role_change, user_deactivate

SYSTEM = Actor.system("test")


def whoami(client, header=None, **extra):
    if header is not None:
        extra["HTTP_AUTHORIZATION"] = header
    return client.get("/api/v1/whoami", **extra)


def flip(token: str, position: int) -> str:
    char = token[position]
    return token[:position] + ("A" if char != "A" else "B") + token[position + 1 :]


@pytest.fixture
def key_and_token(org, make_key):
    return make_key(org, scopes=["keys:read"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "bearer",
        "Bearer a b",
        "Bearer é",
        "Bearer " + "x" * 4000,
        "Bearer kw_live_short",
        "Bearer kw_prod_AAAAAAAAAAAA_" + "A" * 38,
    ],
)
def test_malformed_bearer_headers_are_invalid_key(client, header):
    response = whoami(client, header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


@pytest.mark.django_db
def test_no_credentials_is_missing_key(client):
    response = whoami(client)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_key"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "Digest x=y"])
def test_other_schemes_are_left_to_other_authenticators(client, header):
    response = whoami(client, header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_key"


def test_scheme_is_case_insensitive(client, key_and_token):
    _, token = key_and_token
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert whoami(client, f"{scheme} {token}").status_code == 200


def test_two_tokens_are_invalid(client, key_and_token):
    _, token = key_and_token
    assert whoami(client, f"Bearer {token} {token}").status_code == 401


def test_a_bare_token_without_scheme_is_invalid_key(client, key_and_token):
    _, token = key_and_token
    response = whoami(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


def test_a_flipped_character_is_refused_without_a_query(client, key_and_token):
    _, token = key_and_token
    with CaptureQueriesContext(connection) as queries:
        response = whoami(client, f"Bearer {flip(token, 20)}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    assert len(queries) == 0


def test_unknown_key_id_with_valid_checksum_is_invalid(client, db):
    parsed = tokens.generate("live")
    response = whoami(client, f"Bearer {parsed.token}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


def test_known_id_with_wrong_secret_and_recomputed_checksum_is_invalid(client, key_and_token):
    key, token = key_and_token
    body = f"kw_live_{key.id}_" + "Z" * 32
    forged = body + tokens.checksum(body)
    assert tokens.looks_like_token(forged)
    response = whoami(client, f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


def test_valid_key_authenticates_with_request_user_and_auth(client, key_and_token, org):
    key, token = key_and_token
    response = whoami(client, f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["key"]["id"] == key.id
    assert body["organization"] == {"id": str(org.pk), "slug": org.slug, "name": org.name}
    assert body["owner"] is None
    assert body["effective_scopes"] == ["keys:read"]
    assert token not in response.content.decode()


def test_revoked_key_is_invalid_key_on_the_next_request(client, key_and_token):
    key, token = key_and_token
    assert whoami(client, f"Bearer {token}").status_code == 200
    assert whoami(client, f"Bearer {token}").status_code == 200  # now cached in this process
    api_key_revoke(key=key, actor=SYSTEM)
    response = whoami(client, f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


def test_expired_key_is_expired_key(client, org, make_key):
    key, token = make_key(org, expires_at=timezone.now() + timedelta(hours=1))
    APIKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = whoami(client, f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired_key"


def test_key_in_grace_works_with_deprecation_and_sunset(client, key_and_token):
    key, token = key_and_token
    new, new_token, old = api_key_rotate(key=key, actor=SYSTEM, grace_period=3600)
    response = whoami(client, f"Bearer {token}")
    assert response.status_code == 200
    assert response["Deprecation"] == "true"
    assert response["Sunset"].endswith("GMT")
    fresh = whoami(client, f"Bearer {new_token}")
    assert fresh.status_code == 200
    assert "Deprecation" not in fresh


def test_after_grace_the_old_key_is_expired_key(client, key_and_token):
    key, token = key_and_token
    api_key_rotate(key=key, actor=SYSTEM, grace_period=0)
    response = whoami(client, f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired_key"


def test_second_request_within_a_minute_costs_at_most_two_queries_and_no_write(
    client, key_and_token
):
    _, token = key_and_token
    assert whoami(client, f"Bearer {token}").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert whoami(client, f"Bearer {token}").status_code == 200
    assert len(queries) <= 2
    writes = [q["sql"] for q in queries if q["sql"].split()[0].upper() in {"UPDATE", "INSERT"}]
    assert writes == []


class Ping(APIView):
    required_scopes = ["keys:read"]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("api/v1/ping", Ping.as_view())]


@override_settings(ROOT_URLCONF=__name__)
def test_a_warm_key_costs_no_query_at_all(client, key_and_token):
    _, token = key_and_token
    for _ in range(2):
        client.get("/api/v1/ping", HTTP_AUTHORIZATION=f"Bearer {token}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/ping", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert len(queries) == 0


def test_whoami_shows_usage_fresh_from_the_database(client, key_and_token):
    key, token = key_and_token
    for _ in range(2):
        whoami(client, f"Bearer {token}")
    APIKey.objects.filter(pk=key.pk).update(usage_count=41)
    assert whoami(client, f"Bearer {token}").json()["key"]["usage_count"] == 41


def test_last_used_is_set_on_first_use_and_refreshed_once_a_minute(client, key_and_token):
    from apikeys.usage import flusher

    key, token = key_and_token
    whoami(client, f"Bearer {token}", REMOTE_ADDR="203.0.113.9")
    key.refresh_from_db()
    assert key.last_used_at is None  # gathered in the process, written in the background
    flusher.flush_now()
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None and key.last_used_ip == "203.0.113.9"
    whoami(client, f"Bearer {token}")
    flusher.flush_now()
    key.refresh_from_db()
    assert key.last_used_at == first
    APIKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    from apikeys.cache import verified_keys

    verified_keys.clear()
    whoami(client, f"Bearer {token}")
    flusher.flush_now()
    key.refresh_from_db()
    assert key.last_used_at > first


def test_pepper_rotation_upgrades_the_stored_hash(client, org, make_key):
    with override_settings(KEYWARD_PEPPER="old-pepper"):
        key, token = make_key(org)
    old_hash = APIKey.objects.get(pk=key.pk).secret_hash
    with override_settings(KEYWARD_PEPPER="new-pepper", KEYWARD_PEPPER_FALLBACKS=["old-pepper"]):
        assert whoami(client, f"Bearer {token}").status_code == 200
        new_hash = APIKey.objects.get(pk=key.pk).secret_hash
        assert new_hash != old_hash
        assert new_hash == tokens.hash_token(token)
    with override_settings(KEYWARD_PEPPER="new-pepper", KEYWARD_PEPPER_FALLBACKS=[]):
        assert whoami(client, f"Bearer {token}").status_code == 200


def test_personal_key_follows_its_owners_current_role(client, org, add_member, make_key):
    admin = add_member(org, Role.ADMIN)
    key, token = make_key(org, actor=admin, owner=admin, scopes=["keys:read", "keys:write"])
    body = whoami(client, f"Bearer {token}").json()
    assert body["effective_scopes"] == ["keys:read", "keys:write"]
    assert body["owner"] == {"id": str(admin.pk), "email": admin.email}
    membership_role_change(
        membership=Membership.objects.get(user=admin), role=Role.VIEWER, actor=SYSTEM
    )
    body = whoami(client, f"Bearer {token}").json()
    assert body["effective_scopes"] == ["keys:read"]
    assert client.get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    response = client.post(
        "/api/v1/keys",
        {"name": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 403
    assert response.json()["error"]["required_scopes"] == ["keys:write"]


def test_removing_a_member_revokes_their_personal_keys(client, org, add_member, make_key):
    admin = add_member(org, Role.ADMIN)
    key, token = make_key(org, actor=admin, owner=admin, scopes=["keys:read"])
    org_key, org_token = make_key(org, actor=admin, scopes=["keys:read"])
    membership_remove(membership=Membership.objects.get(user=admin), actor=SYSTEM)
    assert APIKey.objects.get(pk=key.pk).revoked_at is not None
    assert whoami(client, f"Bearer {token}").status_code == 401
    assert whoami(client, f"Bearer {org_token}").status_code == 200  # survives its creator


def test_deactivating_a_user_revokes_their_personal_keys(client, org, add_member, make_key):
    admin = add_member(org, Role.ADMIN)
    _, token = make_key(org, actor=admin, owner=admin)
    user_deactivate(user=admin, actor=SYSTEM)
    assert whoami(client, f"Bearer {token}").status_code == 401


def test_scope_change_holds_on_the_next_request(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    for _ in range(2):
        assert client.get("/api/v1/keys", **auth).status_code == 200
    api_key_update(key=key, actor=SYSTEM, scopes=["usage:read"])
    response = client.get("/api/v1/keys", **auth)
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "missing_scope",
        "message": "This key lacks the scope keys:read.",
        "request_id": response["X-Request-Id"],
        "required_scopes": ["keys:read"],
    }


def test_environment_in_token_must_match_the_key(client, key_and_token):
    key, token = key_and_token
    body = token[:-6].replace("_live_", "_test_")
    # A correct checksum over a different environment is still not this key.
    assert whoami(client, f"Bearer {body + tokens.checksum(body)}").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["api_key", "token", "anything"])
def test_key_in_query_string_is_refused_and_not_echoed(client, key_and_token, param):
    _, token = key_and_token
    response = client.get(f"/api/v1/keys?{param}={token}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "key_in_url"
    assert token not in response.content.decode()
