from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import APIKey
from audit.models import AuditEvent
from orgs.roles import Role

KEY_FIELDS = {
    "id", "prefix", "last4", "name", "environment", "scopes", "status", "owner", "created_by",
    "created_at", "expires_at", "revoked_at", "replaced_by", "last_used_at", "last_used_ip",
    "usage_count", "allowed_ips", "rate_limit", "kind", "allowed_origins", "resources",
}  # fmt: skip


@pytest.fixture
def writer(org, make_key):
    return make_key(org, name="writer", scopes=["keys:read", "keys:write"])


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post(client, path, token, body=None, raw=None):
    data = raw if raw is not None else (body if body is not None else {})
    if raw is None:
        import json

        data = json.dumps(data)
    return client.post(path, data, content_type="application/json", **auth(token))


def patch(client, path, token, body):
    import json

    return client.patch(path, json.dumps(body), content_type="application/json", **auth(token))


def test_create_returns_the_key_and_its_token_once(client, writer):
    _, token = writer
    response = post(client, "/api/v1/keys", token, {"name": "CI Pipeline", "scopes": ["keys:read"]})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"key", "token"}
    assert set(body["key"]) == KEY_FIELDS
    assert body["key"]["status"] == "active"
    assert body["key"]["created_by"]["type"] == "api_key"
    assert body["token"].startswith(body["key"]["prefix"] + "_")
    assert body["token"].endswith(body["key"]["last4"])
    new = APIKey.objects.get(pk=body["key"]["id"])
    assert body["token"] not in new.secret_hash
    listing = client.get(f"/api/v1/keys/{new.id}", **auth(token))
    assert body["token"] not in listing.content.decode()


def test_default_scopes_are_the_callers_minus_admin(client, org, make_key):
    _, token = make_key(org, scopes=["admin"])
    body = post(client, "/api/v1/keys", token, {"name": "defaults"}).json()
    assert "admin" not in body["key"]["scopes"]
    assert body["key"]["scopes"][0] == "keys:read"


def test_list_is_newest_first_with_cursor_pagination(client, org, writer, make_key):
    _, token = writer
    made = [make_key(org, name=f"k{i}")[0].id for i in range(5)]
    first = client.get("/api/v1/keys?limit=2", **auth(token)).json()
    assert set(first) == {"results", "next"}
    assert [k["id"] for k in first["results"]] == made[::-1][:2]
    second = client.get(first["next"], **auth(token)).json()
    assert [k["id"] for k in second["results"]] == made[::-1][2:4]


def test_list_filters_by_status_and_environment(client, org, writer, make_key):
    _, token = writer
    revoked, _ = make_key(org, name="old", scopes=["keys:read"])
    post(client, f"/api/v1/keys/{revoked.id}/revoke", token)
    test_key, _ = make_key(org, name="sandbox", environment="test")
    statuses = client.get("/api/v1/keys?status=revoked", **auth(token)).json()["results"]
    assert [k["id"] for k in statuses] == [revoked.id]
    tests = client.get("/api/v1/keys?environment=test", **auth(token)).json()["results"]
    assert [k["id"] for k in tests] == [test_key.id]


@pytest.mark.parametrize(
    "query",
    ["status=broken", "environment=prod", "limit=0", "limit=abc", "limit=10000", "cursor=zzz"],
)
def test_bad_list_parameters_are_validation_errors(client, writer, query):
    _, token = writer
    response = client.get(f"/api/v1/keys?{query}", **auth(token))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert query.split("=")[0] in error["fields"]


def test_update_changes_fields_and_records_before_and_after(client, org, writer, make_key):
    _, token = writer
    key, _ = make_key(org, name="before", scopes=["keys:read"])
    response = patch(
        client, f"/api/v1/keys/{key.id}", token,
        {"name": "after", "allowed_ips": ["10.0.0.0/8"], "rate_limit": "10/min"},
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "after"
    event = AuditEvent.objects.filter(action="api_key.updated", target_id=key.id).get()
    assert event.changes["name"] == {"before": "before", "after": "after"}
    assert event.changes["allowed_ips"] == {"before": [], "after": ["10.0.0.0/8"]}
    assert "scopes" not in event.changes


def test_rotate_returns_new_token_and_previous_key(client, org, writer, make_key):
    _, token = writer
    key, old_token = make_key(org, name="rotate me", scopes=["keys:read"], rate_limit="5/s")
    response = post(client, f"/api/v1/keys/{key.id}/rotate", token, {"grace_period": 3600})
    assert response.status_code == 201
    body = response.json()
    assert body["previous"]["id"] == key.id
    assert body["previous"]["status"] == "superseded"
    assert body["previous"]["replaced_by"] == body["key"]["id"]
    for field in ("name", "scopes", "environment", "rate_limit", "allowed_ips"):
        assert body["key"][field] == body["previous"][field]
    assert client.get("/api/v1/whoami", **auth(old_token)).status_code == 200
    assert client.get("/api/v1/whoami", **auth(body["token"])).status_code == 200
    event = AuditEvent.objects.get(action="api_key.rotated")
    assert event.target_id == key.id
    assert event.changes["replaced_by"] == {"before": None, "after": body["key"]["id"]}


def test_revoke_is_immediate_and_harmless_twice(client, org, writer, make_key):
    _, token = writer
    key, victim = make_key(org, scopes=["keys:read"])
    assert client.get("/api/v1/whoami", **auth(victim)).status_code == 200
    first = post(client, f"/api/v1/keys/{key.id}/revoke", token)
    assert first.status_code == 200
    assert first.json()["status"] == "revoked"
    again = post(client, f"/api/v1/keys/{key.id}/revoke", token)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.id).count() == 1
    assert client.get("/api/v1/whoami", **auth(victim)).status_code == 401


def test_revoked_key_cannot_be_changed_or_rotated(client, org, writer, make_key):
    _, token = writer
    key, _ = make_key(org, scopes=["keys:read"])
    post(client, f"/api/v1/keys/{key.id}/revoke", token)
    for response in (
        patch(client, f"/api/v1/keys/{key.id}", token, {"name": "zombie"}),
        post(client, f"/api/v1/keys/{key.id}/rotate", token),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "key_revoked"
    assert APIKey.objects.get(pk=key.pk).name != "zombie"


def test_another_organisations_key_is_404_for_every_verb(client, writer, make_org, make_key):
    _, token = writer
    other_key, _ = make_key(make_org("globex"), name="Globex secret project")
    responses = [
        client.get(f"/api/v1/keys/{other_key.id}", **auth(token)),
        patch(client, f"/api/v1/keys/{other_key.id}", token, {"name": "pwned"}),
        post(client, f"/api/v1/keys/{other_key.id}/rotate", token),
        post(client, f"/api/v1/keys/{other_key.id}/revoke", token),
    ]
    for response in responses:
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert "Globex" not in response.content.decode()
    other_key.refresh_from_db()
    assert other_key.revoked_at is None and other_key.name == "Globex secret project"
    listed = client.get("/api/v1/keys", **auth(token)).json()["results"]
    assert other_key.id not in {k["id"] for k in listed}


def test_a_key_cannot_mint_more_than_its_own_scopes(client, writer):
    _, token = writer
    response = post(client, "/api/v1/keys", token, {"name": "x", "scopes": ["audit:read"]})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_not_allowed"
    assert response.json()["error"]["scopes"] == ["audit:read"]
    assert not APIKey.objects.filter(name="x").exists()


def test_a_key_cannot_widen_another_keys_scopes(client, org, writer, make_key):
    _, token = writer
    key, _ = make_key(org, scopes=["keys:read"])
    response = patch(client, f"/api/v1/keys/{key.id}", token, {"scopes": ["keys:read", "admin"]})
    assert response.status_code == 403
    assert response.json()["error"]["scopes"] == ["admin"]


def test_a_key_cannot_rotate_a_more_powerful_key(client, org, writer, make_key):
    _, token = writer
    admin_key, _ = make_key(org, scopes=["admin"])
    response = post(client, f"/api/v1/keys/{admin_key.id}/rotate", token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_not_allowed"


def test_personal_key_makes_personal_keys_and_org_key_makes_org_keys(
    client, org, add_member, make_key, writer
):
    admin = add_member(org, Role.ADMIN)
    _, personal = make_key(org, actor=admin, owner=admin, scopes=["keys:read", "keys:write"])
    made = post(client, "/api/v1/keys", personal, {"name": "mine"}).json()["key"]
    assert made["owner"] == {"id": str(admin.pk), "email": admin.email}
    _, org_token = writer
    made = post(client, "/api/v1/keys", org_token, {"name": "ours"}).json()["key"]
    assert made["owner"] is None


def test_members_personal_keys_see_only_their_own_keys(client, org, add_member, make_key):
    org.members_can_create_keys = True
    org.save()
    member = add_member(org, Role.MEMBER)
    mine, token = make_key(org, actor=member, owner=member, scopes=["keys:read"])
    org_key, _ = make_key(org, name="org key")
    listed = client.get("/api/v1/keys", **auth(token)).json()["results"]
    assert [k["id"] for k in listed] == [mine.id]
    assert client.get(f"/api/v1/keys/{org_key.id}", **auth(token)).status_code == 404


BAD_CREATE_BODIES = [
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 5}, "name"),
    ({"name": ["list"]}, "name"),
    ({"name": "ok", "scopes": ["keys:read", "nope:nothing"]}, "scopes"),
    ({"name": "ok", "scopes": "keys:read"}, "scopes"),
    ({"name": "ok", "environment": "prod"}, "environment"),
    ({"name": "ok", "expires_at": "yesterday"}, "expires_at"),
    ({"name": "ok", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "ok", "allowed_ips": ["10.0.0.1/8"]}, "allowed_ips"),
    ({"name": "ok", "allowed_ips": ["300.0.0.0/8"]}, "allowed_ips"),
    ({"name": "ok", "allowed_ips": ["not an ip"]}, "allowed_ips"),
    ({"name": "ok", "rate_limit": "0/min"}, "rate_limit"),
    ({"name": "ok", "rate_limit": "10/fortnight"}, "rate_limit"),
    ({"name": "ok", "rate_limit": "-5/s"}, "rate_limit"),
    ({"name": "ok", "rate_limit": "abc"}, "rate_limit"),
    ({"name": "ok", "unexpected": True}, "unexpected"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATE_BODIES)
def test_bad_create_bodies_are_validation_errors_and_write_nothing(client, writer, body, field):
    _, token = writer
    keys, events = APIKey.objects.count(), AuditEvent.objects.count()
    response = post(client, "/api/v1/keys", token, body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert (APIKey.objects.count(), AuditEvent.objects.count()) == (keys, events)


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"a string"', "null", "\x00"])
def test_bodies_that_are_not_json_objects_are_validation_errors(client, writer, raw):
    _, token = writer
    keys = APIKey.objects.count()
    response = post(client, "/api/v1/keys", token, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert APIKey.objects.count() == keys


def test_expiry_beyond_the_organisations_cap_is_refused(client, org, writer):
    _, token = writer
    org.max_key_lifetime_days = 30
    org.save()
    late = (timezone.now() + timedelta(days=31)).isoformat()
    response = post(client, "/api/v1/keys", token, {"name": "late", "expires_at": late})
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["fields"]
    capped = post(client, "/api/v1/keys", token, {"name": "capped"}).json()["key"]
    assert capped["expires_at"] is not None


@pytest.mark.parametrize("grace", [-1, 604801, "soon", 1.5, True])
def test_bad_grace_periods_are_validation_errors(client, org, writer, make_key, grace):
    _, token = writer
    key, _ = make_key(org)
    response = post(client, f"/api/v1/keys/{key.id}/rotate", token, {"grace_period": grace})
    assert response.status_code == 400
    assert "grace_period" in response.json()["error"]["fields"]
    key.refresh_from_db()
    assert key.replaced_by_id is None


@pytest.mark.parametrize("body", [{"name": ""}, {"scopes": ["bogus"]}, {"expires_at": "x"}])
def test_bad_update_bodies_are_validation_errors(client, org, writer, make_key, body):
    _, token = writer
    key, _ = make_key(org, name="stays")
    response = patch(client, f"/api/v1/keys/{key.id}", token, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert APIKey.objects.get(pk=key.pk).name == "stays"


def test_missing_scope_names_the_required_scopes(client, org, make_key):
    _, token = make_key(org, scopes=["usage:read"])
    response = client.get("/api/v1/keys", **auth(token))
    assert response.status_code == 403
    assert response.json()["error"]["required_scopes"] == ["keys:read"]
