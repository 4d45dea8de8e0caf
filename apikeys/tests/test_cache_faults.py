"""A revocation made while the shared cache is down is never undone when it comes back.

"Another process" is modelled by its memory: the verified-key entries it held
before the outage, put back after the revocation dropped them in this one.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import pytest
from django.core.cache import cache

from apikeys import cache as key_cache
from apikeys.cache import verified_keys
from apikeys.services import api_key_revoke
from audit.actors import Actor
from audit.models import AuditEvent


@contextmanager
def shared_cache_down():
    down = ConnectionError("shared cache unreachable")
    with (
        mock.patch.object(cache, "get", side_effect=down),
        mock.patch.object(cache, "set", side_effect=down),
        mock.patch.object(cache, "add", side_effect=down),
    ):
        yield


def other_process_memory():
    return dict(verified_keys._entries), dict(verified_keys._organizations)


def restore(memory):
    entries, organizations = memory
    verified_keys._entries.update(entries)
    verified_keys._organizations.update(organizations)


def whoami(client, token):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def victim(client, org, make_key):
    """Return a key and its token, verified once so that this process caches its state."""
    key, token = make_key(org, scopes=["keys:read"])
    assert whoami(client, token).status_code == 200
    return key, token


@pytest.mark.django_db
def test_while_the_shared_cache_is_down_keys_authenticate_and_revocation_holds(client, victim):
    key, token = victim
    memory = other_process_memory()
    with shared_cache_down():
        assert whoami(client, token).status_code == 200
        api_key_revoke(key=key, actor=Actor.system("test"))
        restore(memory)
        response = whoami(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.id).exists()


@pytest.mark.django_db
def test_a_cache_restarted_empty_does_not_revive_a_revoked_key(client, victim):
    key, token = victim
    memory = other_process_memory()
    with shared_cache_down():
        api_key_revoke(key=key, actor=Actor.system("test"))
    restore(memory)
    key_cache._missed_invalidations.clear()  # the process that missed it is another one
    cache.clear()  # Redis came back with no data
    assert whoami(client, token).status_code == 401


@pytest.mark.django_db
def test_a_missed_invalidation_is_made_once_the_cache_answers(client, victim):
    key, token = victim
    memory = other_process_memory()
    with shared_cache_down():
        api_key_revoke(key=key, actor=Actor.system("test"))
    assert key.organization_id in key_cache._missed_invalidations
    restore(memory)  # the cache came back with its old data, generation unchanged
    assert whoami(client, token).status_code == 401
    assert key_cache._missed_invalidations == set()


def test_a_generation_is_never_none():
    cache.clear()
    first = key_cache.read_generation(12345)
    assert first is not None and first is not key_cache._UNREADABLE
    assert key_cache.read_generation(12345) == first
    cache.clear()
    assert key_cache.read_generation(12345) not in (None, first)
