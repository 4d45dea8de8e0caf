"""A revoked key presented with its correct secret is a leak signal: recorded, at most hourly."""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from apikeys import tokens
from apikeys.services import api_key_revoke
from audit import services
from audit.actors import Actor
from audit.models import AuditEvent

USED = "api_key.revoked_key_used"


def revoked_key(org, make_key):
    key, token = make_key(org, name="Leaked")
    api_key_revoke(key=key, actor=Actor.system("test"))
    return key, token


def test_the_first_use_is_recorded_and_the_request_still_refused(org, make_key, api):
    key, token = revoked_key(org, make_key)
    response = api(token).get(
        "/api/v1/whoami", HTTP_X_REQUEST_ID="leak-1", REMOTE_ADDR="203.0.113.50"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    event = AuditEvent.objects.get(action=USED)
    assert (event.organization_id, event.target_id, event.actor_id) == (org.pk, key.id, key.id)
    assert (event.request_id, event.ip) == ("leak-1", "203.0.113.50")


def test_a_hammering_leaked_key_is_recorded_once_an_hour(org, make_key, api):
    _key, token = revoked_key(org, make_key)
    client = api(token)
    codes = {client.get("/api/v1/whoami").json()["error"]["code"] for _ in range(5)}
    assert codes == {"invalid_key"}
    assert AuditEvent.objects.filter(action=USED).count() == 1
    cache.clear()  # what the passing hour does to the gate
    client.get("/api/v1/whoami")
    assert AuditEvent.objects.filter(action=USED).count() == 2


def test_each_key_has_its_own_hour(org, make_key, api):
    _one, first = revoked_key(org, make_key)
    _two, second = revoked_key(org, make_key)
    api(first).get("/api/v1/whoami")
    api(second).get("/api/v1/whoami")
    assert AuditEvent.objects.filter(action=USED).count() == 2


def test_a_wrong_secret_for_a_revoked_key_records_nothing(org, make_key, api):
    key, _token = revoked_key(org, make_key)
    guess = tokens.generate(key.environment, key_id=key.id)  # right id, wrong secret
    response = api(guess.token).get("/api/v1/whoami")
    assert response.json()["error"]["code"] == "invalid_key"
    assert not AuditEvent.objects.filter(action=USED).exists()


def test_an_active_key_records_nothing(org, make_key, api):
    _key, token = make_key(org)
    assert api(token).get("/api/v1/whoami").status_code == 200
    assert not AuditEvent.objects.filter(action=USED).exists()


class BrokenCache:
    def add(self, *args, **kwargs):
        raise ConnectionError("cache is down")

    def delete(self, *args, **kwargs):
        raise ConnectionError("cache is down")


def test_without_the_cache_the_database_keeps_it_hourly(make_org, make_key, api, monkeypatch):
    earlier = timezone.now() - timedelta(minutes=61)
    monkeypatch.setattr(services, "cache", BrokenCache())
    with monkeypatch.context() as m:
        m.setattr(services, "_now", lambda: earlier)
        _key, token = revoked_key(make_org(), make_key)
        assert api(token).get("/api/v1/whoami").status_code == 401
    assert AuditEvent.objects.filter(action=USED).count() == 1
    # over an hour later: recorded again; then not again within the hour
    for _ in range(3):
        assert api(token).get("/api/v1/whoami").json()["error"]["code"] == "invalid_key"
    assert AuditEvent.objects.filter(action=USED).count() == 2
