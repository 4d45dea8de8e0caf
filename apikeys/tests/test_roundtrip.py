"""One shared-cache round trip per warm request, and nothing counted for a refused one."""

import threading
from datetime import UTC, datetime

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.connection import AbstractConnection

from apikeys.cache import verified_keys
from apikeys.throttling import DailyQuotaThrottle, KeyRateThrottle
from apikeys.usage import usage_counter
from audit.actors import Actor
from orgs.services import organization_update

SYSTEM = Actor.system("test")
NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC).timestamp()

pytestmark = pytest.mark.skipif(
    not isinstance(caches["default"], RedisCache),
    reason="the round trip is Redis's; the local-memory cache counts in the process",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch, org):
    monkeypatch.setattr(KeyRateThrottle, "timer", staticmethod(lambda: NOON + 10))
    monkeypatch.setattr(DailyQuotaThrottle, "timer", staticmethod(lambda: NOON + 10))
    quota = DailyQuotaThrottle().counter_name(org.pk, NOON + 10)  # ids repeat across runs
    caches["default"].delete(quota)
    verified_keys.clear()
    yield
    caches["default"].delete(quota)


@pytest.fixture
def round_trips(monkeypatch):
    """Count this thread's writes to any Redis connection (each is one round trip).

    The lease's thread talks to Redis too, on its own schedule: not the request's cost.
    """
    sent = []
    original = AbstractConnection.send_packed_command
    me = threading.current_thread()

    def spy(self, command, check_health=True):
        if threading.current_thread() is me:
            sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", spy)
    return sent


def warm(client, key):
    """Verify the key twice: the first loads and caches it, the second is answered from there."""
    assert whoami(client).status_code == 200
    assert whoami(client).status_code == 200
    assert verified_keys.get(key.pk) is not None


def whoami(client):
    return client.get("/api/v1/whoami")


def used(key):
    return sum(n for (key_id, _day), n in usage_counter.pending().items() if key_id == key.pk)


def quota_used(org):
    org.refresh_from_db()
    return DailyQuotaThrottle().used(org)


@pytest.mark.parametrize("limited", [False, True])
def test_a_warm_request_makes_one_round_trip(api, org, make_key, round_trips, limited):
    organization_update(organization=org, actor=SYSTEM, daily_request_quota=100)
    key, token = make_key(org, rate_limit="5/min" if limited else None)
    client = api(token)
    warm(client, key)
    round_trips.clear()
    response = whoami(client)
    assert response.status_code == 200
    assert len(round_trips) == 1
    assert used(key) == 3
    assert quota_used(org) == 3
    if limited:
        assert response["RateLimit-Remaining"] == "2"


def test_a_wrong_secret_for_a_cached_key_is_refused_and_counts_nothing(api, org, make_key):
    organization_update(organization=org, actor=SYSTEM, daily_request_quota=100)
    key, token = make_key(org, rate_limit="5/min")
    client = api(token)
    warm(client, key)
    from apikeys import tokens

    wrong = tokens.generate(key.environment, key_id=key.pk).token  # well-formed, not its secret
    response = api(wrong).get("/api/v1/whoami")
    assert response.status_code == 401
    assert used(key) == 2
    assert quota_used(org) == 2
    key.refresh_from_db()
    assert KeyRateThrottle().current_headers(key)["RateLimit-Remaining"] == "3"


def test_a_missing_scope_spends_neither_rate_nor_quota(api, org, make_key):
    organization_update(organization=org, actor=SYSTEM, daily_request_quota=100)
    key, token = make_key(org, scopes=["keys:read"], rate_limit="3/min")
    client = api(token)
    warm(client, key)
    response = client.post("/api/v1/keys", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response["RateLimit-Remaining"] == "1"
    assert quota_used(org) == 2
    assert used(key) == 3  # authenticated, so counted, as before


def test_without_the_settling_middleware_throttles_count_for_themselves(
    api, org, make_key, settings
):
    """Nothing would give back a count made ahead for a throttle that never runs."""
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "apikeys.middleware.KeyResponseHeadersMiddleware"
    ]
    organization_update(organization=org, actor=SYSTEM, daily_request_quota=100)
    key, token = make_key(org, scopes=["keys:read"], rate_limit="3/min")
    client = api(token)
    warm(client, key)
    response = client.post("/api/v1/keys", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert "RateLimit-Remaining" not in response  # the middleware is what adds it here
    assert quota_used(org) == 2
    assert KeyRateThrottle().current_headers(key)["RateLimit-Remaining"] == "1"
    assert used(key) == 3
    response = whoami(client)
    assert response.status_code == 200
    assert quota_used(org) == 3
    assert KeyRateThrottle().current_headers(key)["RateLimit-Remaining"] == "0"
