"""Every event says who, from where, under which request and trace, and never holds a secret."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.test import override_settings

from apikeys.models import APIKey
from audit.models import AuditEvent
from audit.services import audit_record

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_revoking_over_the_api_records_the_full_context(org, make_key, api):
    caller, token = make_key(org, name="Deploy bot")
    victim, _ = make_key(org, name="Old CI")
    response = api(token).post(
        f"/api/v1/keys/{victim.id}/revoke",
        HTTP_X_REQUEST_ID="req-revoke-42",
        HTTP_TRACEPARENT=TRACEPARENT,
        HTTP_USER_AGENT="keyward-tests/1.0",
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="api_key.revoked", target_id=victim.id)
    assert event.request_id == response["X-Request-Id"] == "req-revoke-42"
    assert event.trace_id == TRACE_ID
    assert event.user_agent == "keyward-tests/1.0"
    assert event.ip == "198.51.100.7"
    assert (event.actor_type, event.actor_id) == ("api_key", caller.id)
    assert event.actor_label == f"Deploy bot ({caller.prefix})"
    assert (event.target_type, event.target_id) == ("api_key", victim.id)
    assert event.target_label == f"Old CI ({victim.prefix})"
    assert set(event.changes) == {"revoked_at"}
    assert event.changes["revoked_at"]["before"] is None


def test_a_generated_request_id_is_the_one_the_response_carried(org, make_key, api):
    _caller, token = make_key(org)
    victim, _ = make_key(org)
    response = api(token).post(f"/api/v1/keys/{victim.id}/revoke", HTTP_X_REQUEST_ID="bad id!")
    event = AuditEvent.objects.get(action="api_key.revoked", target_id=victim.id)
    assert response["X-Request-Id"] != "bad id!"
    assert event.request_id == response["X-Request-Id"]
    assert event.trace_id == ""


@override_settings(KEYWARD_TRUSTED_PROXIES=["10.0.0.0/8"])
@pytest.mark.parametrize(
    ("remote", "forwarded", "recorded"),
    [
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),  # through a trusted proxy
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # a client claiming another address
    ],
)
def test_the_address_comes_through_trusted_proxies_only(
    org, make_key, api, remote, forwarded, recorded
):
    _caller, token = make_key(org)
    victim, _ = make_key(org)
    api(token).post(
        f"/api/v1/keys/{victim.id}/revoke", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded
    )
    assert AuditEvent.objects.get(action="api_key.revoked", target_id=victim.id).ip == recorded


def test_the_actor_label_outlives_the_actor(org, make_user):
    user = make_user("gone@example.com")
    with transaction.atomic():
        event = audit_record(organization_id=org.pk, action="test.by_person", actor=user)
    user_id = user.pk
    user.delete()
    event.refresh_from_db()
    assert (event.actor_type, event.actor_id, event.actor_label) == (
        "user",
        str(user_id),
        "gone@example.com",
    )


def test_no_event_holds_a_token_or_a_hash(org, make_key, api):
    _admin, token = make_key(org, name="Admin bot")
    created = api(token).post("/api/v1/keys", {"name": "Made over HTTP"}, format="json")
    assert created.status_code == 201
    key_id = created.json()["key"]["id"]
    rotated = api(token).post(f"/api/v1/keys/{key_id}/rotate", {}, format="json")
    assert rotated.status_code == 201
    new_id = rotated.json()["key"]["id"]
    api(token).post(f"/api/v1/keys/{new_id}/revoke")
    api(rotated.json()["token"]).get("/api/v1/whoami")  # a revoked key, used
    secrets = [token, created.json()["token"], rotated.json()["token"]]
    secrets += list(APIKey.objects.values_list("secret_hash", flat=True))
    events = list(AuditEvent.objects.filter(organization=org).values())
    assert {e["action"] for e in events} >= {
        "api_key.created",
        "api_key.rotated",
        "api_key.revoked",
        "api_key.revoked_key_used",
    }
    stored = json.dumps(events, default=str)
    listed = api(token).get("/api/v1/audit-events", {"limit": 200}).content.decode()
    for secret in secrets:
        assert secret not in stored
        assert secret not in listed
        assert secret[-20:] not in stored
