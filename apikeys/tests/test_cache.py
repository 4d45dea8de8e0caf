"""The verified-key cache trusts an entry only while its organisation's generation holds."""

import pytest
from django.core.cache import cache

from apikeys.cache import _UNREADABLE, generation_key, read_generation, verified_keys
from apikeys.models import APIKey


def whoami(client, token):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


def revoke_elsewhere(key: APIKey) -> None:
    """Revoke as another process would: the row changes and the shared generation moves,
    but this process's cache is not told directly."""
    from django.utils import timezone

    APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    cache.set(generation_key(key.organization_id), "bumped-by-another-process")


@pytest.mark.django_db
def test_a_bump_from_another_process_refuses_the_cached_key(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    for _ in range(3):
        assert whoami(client, token).status_code == 200
    assert verified_keys.get(key.pk, read_generation(key.organization_id)) is not None
    revoke_elsewhere(key)
    assert whoami(client, token).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("when", ["never bumped", "bumped before"])
def test_a_lost_generation_never_revives_a_stale_entry(client, org, make_key, when):
    """Redis may lose a generation (eviction, FLUSHDB, a restart without persistence).

    An absent generation must not match what was cached while it was absent,
    or a key revoked in between would authenticate again.
    """
    key, token = make_key(org, scopes=["keys:read"])
    gen = generation_key(key.organization_id)
    cache.delete(gen)
    if when == "bumped before":
        cache.set(gen, "before")
    for _ in range(3):
        assert whoami(client, token).status_code == 200  # cached in this process
    revoke_elsewhere(key)
    cache.delete(gen)  # ... and then the shared cache loses the generation
    response = whoami(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


@pytest.mark.django_db
def test_reading_a_missing_generation_starts_a_new_one(org):
    cache.delete(generation_key(org.pk))
    first = read_generation(org.pk)
    assert first is not None and first is not _UNREADABLE
    assert read_generation(org.pk) == first


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
