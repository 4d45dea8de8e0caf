"""POST /api/v1/credentials/revoke: anyone may report a leaked key; nobody learns anything."""

import json
from datetime import timedelta

import pytest
from django.core.cache import cache

from apikeys import tokens
from apikeys.counters import redis_client
from apikeys.models import APIKey
from apikeys.services import api_key_rotate
from audit.actors import Actor
from audit.models import AuditEvent
from leaks.api import CredentialRevokeApi
from orgs.models import LeakResponse, Organization

URL = "/api/v1/credentials/revoke"


@pytest.fixture(autouse=True)
def no_floor(monkeypatch):
    """Answer at once: the floor's own test puts it back."""
    monkeypatch.setattr(CredentialRevokeApi, "answer_floor", 0)


def report(client, credentials, **extra):
    body = json.dumps({"credentials": credentials})
    return client.post(URL, body, content_type="application/json", **extra)


def whoami(client, token):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


def forged(environment="live"):
    """Return a well-formed token with a correct checksum that belongs to no key."""
    return tokens.generate(environment).token


def test_a_reported_real_key_is_refused_on_the_next_request(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    assert whoami(client, token).status_code == 200  # cached in this process too
    response = report(client, [token], REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 202
    assert whoami(client, token).json()["error"]["code"] == "invalid_key"
    key.refresh_from_db()
    assert key.revoked_at is not None and key.leaked_at is not None
    leaked = AuditEvent.objects.get(action="api_key.leaked", target_id=key.id)
    assert leaked.changes["reporter"]["after"] == "198.51.100.7"
    assert leaked.ip == "198.51.100.7"
    assert token not in json.dumps(leaked.changes)
    revoked = AuditEvent.objects.get(action="api_key.revoked", target_id=key.id)
    assert revoked.changes["reason"]["after"] == "leaked"


def test_real_forged_and_junk_credentials_get_byte_identical_answers(client, org, make_key):
    _key, token = make_key(org)
    answers = [
        report(client, [credential]).content
        for credential in (token, forged(), "not a key at all", "kw_live_x")
    ]
    assert answers[0] == b'{"status":"accepted"}'
    assert set(answers) == {answers[0]}


def test_every_answer_waits_for_the_same_floor(client, org, make_key, monkeypatch):
    """A real key's revocation and a made-up token's nothing take the same time to answer."""
    monkeypatch.setattr(CredentialRevokeApi, "answer_floor", 0.3)
    ticks = iter(range(1000))
    waited = []
    monkeypatch.setattr(CredentialRevokeApi, "clock", staticmethod(lambda: next(ticks) * 0.01))
    monkeypatch.setattr(CredentialRevokeApi, "sleep", staticmethod(waited.append))
    _key, token = make_key(org)
    report(client, [token])
    report(client, [forged()])
    assert waited == [pytest.approx(0.29), pytest.approx(0.29)]


def test_only_a_real_secret_gets_a_key_revoked(client, org, make_key):
    key, token = make_key(org)
    other_secret = tokens.generate("live", key_id=key.id).token  # right id, wrong secret
    other_env = tokens.generate("test", key_id=key.id).token
    assert report(client, [other_secret, other_env]).status_code == 202
    key.refresh_from_db()
    assert key.revoked_at is None and key.leaked_at is None
    assert not AuditEvent.objects.filter(action="api_key.leaked").exists()


def test_a_second_report_changes_nothing_more(client, org, make_key):
    key, token = make_key(org)
    report(client, [token, token])
    report(client, [token])
    assert AuditEvent.objects.filter(action="api_key.leaked", target_id=key.id).count() == 1
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.id).count() == 1


def test_notify_policy_leaves_the_key_working_and_flagged(client, make_org, make_key):
    org = make_org(leak_response=LeakResponse.NOTIFY)
    key, token = make_key(org, scopes=["keys:read"])
    report(client, [token])
    key.refresh_from_db()
    assert key.revoked_at is None and key.leaked_at is not None
    assert whoami(client, token).status_code == 200
    assert AuditEvent.objects.filter(action="api_key.leaked", target_id=key.id).count() == 1
    assert not AuditEvent.objects.filter(action="api_key.revoked").exists()


def test_a_key_rotating_in_grace_is_revoked_too(client, org, make_key):
    key, token = make_key(org)
    new, _new_token, _old = api_key_rotate(
        key=key, actor=Actor.system("test"), grace_period=int(timedelta(hours=1).total_seconds())
    )
    assert whoami(client, token).status_code == 200
    report(client, [token])
    assert whoami(client, token).json()["error"]["code"] == "invalid_key"
    assert APIKey.objects.get(pk=new.pk).revoked_at is None


def test_the_61st_report_in_an_hour_from_one_address_is_429(client, db):
    for _ in range(60):
        assert report(client, [forged()], REMOTE_ADDR="203.0.113.4").status_code == 202
    refused = report(client, [forged()], REMOTE_ADDR="203.0.113.4")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 3601
    assert report(client, [forged()], REMOTE_ADDR="203.0.113.5").status_code == 202


def test_an_authorization_header_is_refused(client, org, make_key):
    key, token = make_key(org)
    response = report(client, [token], HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'"kw_live_x"',
        b'{"credentials": "kw_live_x"}',
        b'{"credentials": [1, 2]}',
        b'{"credentials": [null]}',
        b'{"credentials": [], "more": 1}',
        b"[" * 5000,
        b'{"credentials": ["\\u0000"]}',
        json.dumps({"credentials": ["x"] * 1001}).encode(),
    ],
    ids=lambda body: repr(body[:30]),
)
def test_malformed_reports_are_400_and_say_nothing_of_tokens(client, db, body):
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "kw_live" not in json.dumps(error)


def test_a_body_over_the_size_limit_is_413(client, org, make_key):
    _key, token = make_key(org)
    body = json.dumps({"credentials": [token, "x" * 1024 * 1024]}).encode()
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert APIKey.objects.get(pk=_key.pk).revoked_at is None


def test_a_report_with_a_real_key_among_junk_revokes_only_that_key(client, org, make_key):
    key, token = make_key(org)
    other, _other_token = make_key(org)
    report(client, ["junk", forged(), token, forged("test")])
    assert APIKey.objects.get(pk=key.pk).revoked_at is not None
    assert APIKey.objects.get(pk=other.pk).revoked_at is None


def test_nothing_is_cached_or_stored_that_holds_a_reported_token(client, org, make_key):
    _key, token = make_key(org)
    report(client, [token, forged()])
    stored = json.dumps(list(AuditEvent.objects.values("changes", "target_label", "actor_label")))
    assert token not in stored
    client = redis_client(cache)
    if client is not None:
        cached = [(name, client.dump(name)) for name in client.scan_iter()]  # any type
    else:
        cached = list(cache._cache.items())
    assert cached  # the report limit at least is there
    assert all(token.encode() not in repr(entry).encode() for entry in cached)
    assert Organization.objects.count() == 1
