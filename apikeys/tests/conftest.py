"""Fixtures of the apikeys tests: clean usage buffers, and a Redis cache of their own."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache.backends.redis import RedisCache

from apikeys.abuse import failed_attempts
from apikeys.authentication import APIKeyAuthentication
from apikeys.throttling import quota_budgets, rate_slices
from apikeys.usage import flusher, last_uses, usage_counter

GATHERED = (
    usage_counter,
    last_uses,
    failed_attempts,
    APIKeyAuthentication.invalid_key_guard,
    quota_budgets,
    rate_slices,
)


@pytest.fixture(autouse=True)
def _clean_usage_buffers():
    """Start every test with nothing gathered in this process, and no flusher thread."""
    for gathered in GATHERED:
        gathered.discard()
    yield
    flusher.stop()
    for gathered in GATHERED:
        gathered.discard()


@pytest.fixture
def redis_cache(redis_url):
    """Return a Django Redis cache on the test Redis, under a key prefix no one else uses."""
    prefix = f"kwtest-{uuid.uuid4().hex[:12]}"
    cache = RedisCache(redis_url, {"KEY_PREFIX": prefix})
    yield cache
    client = cache._cache.get_client(write=True)
    names = list(client.scan_iter(match=f"{prefix}:*"))
    if names:
        client.delete(*names)
    cache.close()
