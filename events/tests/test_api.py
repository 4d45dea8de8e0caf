"""The webhooks API: endpoints, secrets shown once, deliveries, tests and redelivery."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging

import pytest
from django.db import connection

from audit.models import AuditEvent
from events import addresses
from events.models import WebhookDelivery, WebhookEndpoint
from events.tests.conftest import SYSTEM

WRITE = ["webhooks:read", "webhooks:write"]


class PublicDns(addresses.Resolver):
    """Every name resolves to one public address (no network needed)."""

    def resolve(self, host, port, timeout=None):
        if host.endswith(".invalid"):
            raise addresses.ResolveError(f"{host} does not resolve")
        return [ipaddress.ip_address("93.184.215.14")]


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    monkeypatch.setattr(addresses, "resolver", PublicDns())


@pytest.fixture
def caller(org, make_key, api):
    _, token = make_key(org, scopes=WRITE)
    return api(token)


def create(caller, **body):
    body.setdefault("url", "https://hooks.example.com/keyward")
    return caller.post("/api/v1/webhook-endpoints", body, format="json")


@pytest.mark.django_db
def test_create_shows_the_secret_once_and_keeps_it_sealed(caller, org, caplog):
    caplog.set_level(logging.DEBUG)
    response = create(caller, description="Billing", events=["api_key.revoked", "member.added"])
    assert response.status_code == 201, response.content
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    endpoint = body["endpoint"]
    assert endpoint["url"] == "https://hooks.example.com/keyward"
    assert endpoint["events"] == ["api_key.revoked", "member.added"]  # catalogue order
    assert endpoint["enabled"] is True and endpoint["disabled_reason"] is None
    assert "secret" not in endpoint
    # Read back: never the secret again.
    again = caller.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").json()
    assert again == endpoint
    assert secret not in json.dumps(caller.get("/api/v1/webhook-endpoints").json())
    # Not in any table, not in the audit log, not in a log line.
    raw = base64.b64decode(secret[6:])
    stored = WebhookEndpoint.objects.get()
    assert secret[6:] not in stored.secret_sealed and raw.hex() not in stored.secret_sealed
    assert_nowhere_in_database(secret[6:])
    created = AuditEvent.objects.get(action="webhook.created")
    assert secret[6:] not in json.dumps(created.changes)
    assert created.changes["url"]["after"] == endpoint["url"]
    assert secret[6:] not in caplog.text


def assert_nowhere_in_database(text: str) -> None:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                assert text not in repr(row), table


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example.com/"}, "url"),
        ({"url": "hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/" + "a" * 2030}, "url"),
        ({"url": "https://user:pass@hooks.example.com/"}, "url"),
        ({"url": "https://hooks.example.com/x#frag"}, "url"),
        ({"url": "https://hooks.example.com/x#"}, "url"),
        ({"url": "http://hooks.example.com/"}, "url"),  # https only outside development
        ({"url": "https://127.0.0.1/"}, "url"),
        ({"url": "https://[::ffff:10.0.0.1]/"}, "url"),
        ({"url": "https://nowhere.invalid/"}, "url"),
        ({"url": "https://hooks.example.com/\x00"}, "url"),
        ({"url": "https://hooks.example.com/a b"}, "url"),
        ({"url": 5}, "url"),
        ({}, "url"),
        ({"events": ["api_key.revoked", "no.such_event"]}, "events"),
        ({"events": "api_key.revoked"}, "events"),
        ({"events": [5]}, "events"),
        ({"enabled": "yes"}, "enabled"),
        ({"description": "x" * 201}, "description"),
        ({"description": "nul\x00byte"}, "description"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(caller, body, field):
    if field != "url" and "url" not in body:
        body = {"url": "https://hooks.example.com/", **body}
    response = caller.post("/api/v1/webhook-endpoints", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"], error
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook.").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["null", "[]", '"x"', "{", "0"])
def test_a_body_that_is_not_an_object_is_a_400(caller, raw):
    response = caller.generic(
        "POST", "/api/v1/webhook-endpoints", raw, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_http_and_loopback_are_allowed_only_with_the_development_switches(caller, settings):
    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    assert create(caller, url="http://hooks.example.com/").status_code == 201
    assert create(caller, url="http://127.0.0.1:9000/").status_code == 400
    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True
    assert create(caller, url="http://127.0.0.1:9000/").status_code == 201


@pytest.mark.django_db
def test_update_and_delete_record_their_audit_events(caller):
    endpoint = create(caller).json()["endpoint"]
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}"
    response = caller.patch(path, {"enabled": False, "events": ["api_key.expiring"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False
    assert response.json()["disabled_reason"] == "manual"
    updated = AuditEvent.objects.get(action="webhook.updated")
    assert updated.changes["enabled"] == {"before": True, "after": False}
    assert caller.patch(path, {"url": "ftp://x"}, format="json").status_code == 400
    assert caller.patch(path, {"secret": "x"}, format="json").status_code == 400
    assert caller.delete(path).status_code == 204
    assert caller.get(path).status_code == 404
    assert AuditEvent.objects.filter(action="webhook.deleted", target_id=endpoint["id"]).exists()


@pytest.mark.django_db
def test_rotate_secret_shows_a_new_secret_once(caller):
    first = create(caller).json()
    path = f"/api/v1/webhook-endpoints/{first['endpoint']['id']}/rotate-secret"
    response = caller.post(path)
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    second = response.json()["secret"]
    assert second.startswith("whsec_") and second != first["secret"]
    assert response.json()["endpoint"]["secret_rotated_at"] is not None
    rotated = AuditEvent.objects.get(action="webhook.secret_rotated")
    assert second[6:] not in json.dumps(rotated.changes)
    assert first["secret"][6:] not in json.dumps(rotated.changes)


@pytest.mark.django_db
def test_test_deliveries_and_redeliver(caller, org):
    endpoint = create(caller).json()["endpoint"]
    response = caller.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/test")
    assert response.status_code == 202
    delivery = response.json()["delivery"]
    assert delivery["event"]["type"] == "webhook.test"
    assert delivery["payload"]["id"] == delivery["event"]["id"]
    assert delivery["state"] == "pending" and delivery["manual"] is True
    listed = caller.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()
    assert [d["id"] for d in listed["results"]] == [delivery["id"]]
    again = caller.post(f"/api/v1/webhook-deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202
    assert again.json()["delivery"]["event"]["id"] == delivery["event"]["id"]
    assert again.json()["delivery"]["id"] != delivery["id"]
    listed = caller.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()
    assert len(listed["results"]) == 2
    assert (
        caller.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries?limit=0").status_code
        == 400
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scopes", "method", "path", "status"),
    [
        (["webhooks:read"], "get", "/api/v1/webhook-endpoints", 200),
        (["webhooks:read"], "post", "/api/v1/webhook-endpoints", 403),
        (["keys:read", "keys:write"], "get", "/api/v1/webhook-endpoints", 403),
        (["webhooks:write"], "get", "/api/v1/webhook-endpoints", 403),
    ],
)
def test_scopes(org, make_key, api, scopes, method, path, status):
    _, token = make_key(org, scopes=scopes)
    response = getattr(api(token), method)(
        path, {"url": "https://hooks.example.com/"}, format="json"
    )
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "missing_scope"


@pytest.mark.django_db
def test_another_organisations_endpoints_and_deliveries_are_not_found(
    caller, make_org, make_key, api
):
    other = make_org("other-corp")
    _, token = make_key(other, scopes=WRITE)
    theirs = create(api(token)).json()["endpoint"]
    test = api(token).post(f"/api/v1/webhook-endpoints/{theirs['id']}/test").json()
    for method, path in [
        ("get", f"/api/v1/webhook-endpoints/{theirs['id']}"),
        ("patch", f"/api/v1/webhook-endpoints/{theirs['id']}"),
        ("delete", f"/api/v1/webhook-endpoints/{theirs['id']}"),
        ("post", f"/api/v1/webhook-endpoints/{theirs['id']}/rotate-secret"),
        ("post", f"/api/v1/webhook-endpoints/{theirs['id']}/test"),
        ("get", f"/api/v1/webhook-endpoints/{theirs['id']}/deliveries"),
        ("post", f"/api/v1/webhook-deliveries/{test['delivery']['id']}/redeliver"),
    ]:
        response = getattr(caller, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
        assert theirs["url"] not in response.content.decode()
    assert caller.get("/api/v1/webhook-endpoints").json()["results"] == []
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_at_most_twenty_endpoints(caller):
    for n in range(20):
        assert create(caller, url=f"https://hooks.example.com/{n}").status_code == 201
    response = create(caller, url="https://hooks.example.com/21")
    assert response.status_code == 400
    assert "url" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_member_cannot_manage_webhooks_even_through_the_service(org, add_member):
    from config.errors import Forbidden
    from events.services import webhook_endpoint_create
    from orgs.roles import Role

    member = add_member(org, Role.MEMBER)
    with pytest.raises(Forbidden):
        webhook_endpoint_create(organization=org, actor=member, url="https://hooks.example.com/")
    admin = add_member(org, Role.ADMIN)
    endpoint, _ = webhook_endpoint_create(
        organization=org, actor=admin, url="https://hooks.example.com/"
    )
    assert AuditEvent.objects.get(action="webhook.created").actor_id == str(admin.pk)
    assert endpoint.created_by_label == admin.email
    assert SYSTEM  # the system may too (management commands, operators)
