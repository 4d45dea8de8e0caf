"""The verified-key cache: trusted only under a fresh lease, emptied by invalidations."""

import pytest
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys.cache import VerifiedKeyCache, verified_keys
from apikeys.leases import Bus, LeaseHolder, Publisher
from apikeys.models import APIKey


def whoami(client, token):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


on_redis = pytest.mark.skipif(
    not isinstance(caches["default"], RedisCache), reason="other processes exist only with Redis"
)


@on_redis
@pytest.mark.django_db
def test_an_invalidation_published_by_another_process_refuses_the_cached_key(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    assert whoami(client, token).status_code == 200
    assert verified_keys.get(key.pk) is not None
    # Another process revokes: the row changes, and it publishes the organisation's
    # invalidation, which returns once this process has acknowledged it.
    APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    Publisher(Bus(caches["default"])).publish_and_wait(org.pk)
    assert verified_keys.get(key.pk) is None
    response = whoami(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


@pytest.mark.django_db
def test_a_warm_key_costs_no_query_and_an_untrusted_cache_costs_one(org, make_key, monkeypatch):
    from django.test import RequestFactory
    from rest_framework.request import Request

    from apikeys.authentication import APIKeyAuthentication

    _, token = make_key(org, scopes=["keys:read"])
    auth = APIKeyAuthentication()

    def queries() -> int:
        request = Request(RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}"))
        with CaptureQueriesContext(connection) as captured:
            auth.authenticate(request)
        return len(captured)

    assert queries() >= 1  # loaded (and its first use written)
    assert queries() == 0  # answered from the cache
    monkeypatch.setattr(verified_keys.lease, "trusted", lambda: False)  # the lease ran out
    assert queries() == 1  # the database, every time, until a new lease
    assert queries() == 1


class Trusting:
    """A lease that is always fresh: what these tests look at is the cache's own logic."""

    def trusted(self) -> bool:
        return True


def fresh_cache() -> VerifiedKeyCache:
    keys = VerifiedKeyCache()
    keys.lease = Trusting()
    return keys


def test_a_load_that_raced_an_invalidation_is_not_kept():
    keys = fresh_cache()
    ticket = keys.ticket()  # a request takes its ticket, then reads the old row …
    keys.drop_organization(7)  # … the change is handled meanwhile …
    assert not keys.put("Ab3dEf6hIj9k", 7, ticket, object())  # … so what it read is not kept
    assert keys.get("Ab3dEf6hIj9k") is None
    assert keys.put("Ab3dEf6hIj9k", 8, ticket, object())  # another organisation's load is
    keys.clear()
    assert not keys.put("Ab3dEf6hIj9k", 8, ticket, object())  # not once everything was emptied


def test_a_flood_of_invalidations_keeps_memory_bounded():
    keys = fresh_cache()
    keys.max_invalidated = 1000
    for organization_id in range(1, 5000):
        keys.drop_organization(organization_id)
    assert len(keys._invalidated_at) <= 1000
    assert keys.put("Ab3dEf6hIj9k", 1, keys.ticket(), object())


def test_a_shared_cache_without_publish_subscribe_is_never_trusted(tmp_path):
    holder = LeaseHolder(lambda _: None, lambda: None, backend=FileBasedCache(str(tmp_path), {}))
    assert not holder.trusted()


@pytest.mark.django_db
def test_what_a_request_changes_on_its_key_stays_out_of_the_cache(org, make_key):
    from django.test import RequestFactory
    from rest_framework.request import Request

    from apikeys.authentication import APIKeyAuthentication

    key, token = make_key(org, scopes=["keys:read"])
    auth = APIKeyAuthentication()

    def authenticate():
        request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
        return auth.authenticate(Request(request))[1]

    for _ in range(2):
        authenticate()
    first = authenticate()  # from the cache
    first.name = "changed by a view"
    first._state.fields_cache.pop("organization")
    second = authenticate()
    assert second is not first
    assert second.name == key.name
    assert second.organization.pk == org.pk
    assert "organization" in second._state.fields_cache
