"""Without Redis a process trusts no cached key: a revocation holds, and keys still work.

The processes' side of Redis failures (cut off, frozen, restarted) is in
test_leases.py and test_lease_faults.py; here, the side of the process that
makes the change.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.test import override_settings

from apikeys import cache as key_cache
from apikeys.cache import verified_keys
from apikeys.services import api_key_revoke
from audit.actors import Actor
from audit.models import AuditEvent


def whoami(client, token):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def victim(client, org, make_key):
    """Return a key and its token, verified once so that this process caches its state."""
    key, token = make_key(org, scopes=["keys:read"])
    assert whoami(client, token).status_code == 200
    return key, token


@pytest.mark.django_db
def test_without_a_lease_keys_authenticate_and_revocation_holds(client, victim, monkeypatch):
    key, token = victim
    monkeypatch.setattr(verified_keys.lease, "trusted", lambda: False)  # Redis unreachable
    assert whoami(client, token).status_code == 200
    entries = dict(verified_keys._entries)
    api_key_revoke(key=key, actor=Actor.system("test"))
    verified_keys._entries.update(entries)  # as another process still holds it
    response = whoami(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.id).exists()


unreachable = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:18598/0",
        "OPTIONS": {"socket_connect_timeout": 0.1},
    }
}


@pytest.mark.django_db(transaction=True)
def test_a_change_that_cannot_reach_redis_gives_up_after_a_lease_and_publishes_later(
    org, make_key, settings, redis_url
):
    key, _ = make_key(org)
    settings.KEYWARD_LEASE_SECONDS = 0.5
    key_cache._missed_invalidations.clear()
    with override_settings(CACHES=unreachable):
        assert isinstance(caches["default"], RedisCache)
        import time

        started = time.monotonic()
        api_key_revoke(key=key, actor=Actor.system("test"))  # commits: the real publication
        assert 0.5 <= time.monotonic() - started < 5
        assert org.pk in key_cache._missed_invalidations
    reachable = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    with override_settings(CACHES=reachable):
        key_cache.retry_missed_invalidations()
    assert key_cache._missed_invalidations == set()
