"""A leaked key tells its people and programs: the api_key.leaked webhook and email."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client

from apikeys.activity import key_activity
from apikeys.models import APIKey
from events.tests.receiver import verified
from orgs.models import LeakResponse, Organization
from orgs.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_answer_floor(monkeypatch):
    monkeypatch.setattr("leaks.api.CredentialRevokeApi.answer_floor", 0)


def report(token: str) -> None:
    body = json.dumps({"credentials": [token]})
    response = Client().post(
        "/api/v1/credentials/revoke", body, content_type="application/json", REMOTE_ADDR="192.0.2.9"
    )
    assert response.status_code == 202


def use(token: str, address: str) -> None:
    Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


def test_a_leaked_personal_key_emails_its_owner_with_the_addresses_that_used_it(
    org, owner, add_member, make_key, make_endpoint, receiver, drain
):
    person = add_member(org, Role.ADMIN)
    _, secret = make_endpoint(org, receiver.url, events=["api_key.leaked", "api_key.revoked"])
    key, token = make_key(org, owner=person, name="Laptop script")
    use(token, "198.51.100.20")
    use(token, "203.0.113.77")
    key_activity.flush()
    report(token)
    drain()
    [message] = mail.outbox
    assert message.to == [person.email]  # a personal key: its owner alone
    assert "Laptop script" in message.subject and "revoked" in message.subject
    assert "198.51.100.20" in message.body and "203.0.113.77" in message.body
    assert "192.0.2.9" not in message.body.split("Who used the key")[1]  # the reporter
    assert token not in message.body and token not in message.alternatives[0][0]
    payloads = [verified(request, secret) for request in receiver.wait_for(2)]
    leaked = next(p for p in payloads if p["type"] == "api_key.leaked")
    assert leaked["data"]["key"]["id"] == key.id
    assert leaked["data"]["leak"]["reporter"] == "192.0.2.9"
    assert {p["type"] for p in payloads} == {"api_key.leaked", "api_key.revoked"}
    assert all(token not in json.dumps(p) for p in payloads)


def test_notify_policy_says_the_key_still_works_and_a_second_report_sends_nothing(
    org, owner, make_key, drain
):
    Organization.objects.filter(pk=org.pk).update(leak_response=LeakResponse.NOTIFY)
    key, token = make_key(org, name="Shop backend")
    report(token)
    report(token)
    drain()
    [message] = mail.outbox  # once, to the owners and admins of an organisation key
    assert message.to == [owner.email]
    assert "rotate it now" in message.subject and "still does" in message.body
    assert "nobody" in message.body  # no request was made with it
    assert APIKey.objects.get(pk=key.pk).revoked_at is None
