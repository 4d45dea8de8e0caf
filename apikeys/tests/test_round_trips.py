"""Round trips of a warm request: none for a key without a limit, one for a limited key.

Counted on the request's own thread: the lease's and the sender's threads talk
to Redis too, on their own schedule, and a request never waits for them.
"""

import threading
from datetime import UTC, datetime

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.connection import AbstractConnection

from apikeys.cache import verified_keys
from apikeys.throttling import DailyQuotaThrottle, KeyRateThrottle, quota_budgets
from apikeys.usage import usage_counter
from audit.actors import Actor
from orgs.services import organization_update

SYSTEM = Actor.system("test")
NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC).timestamp()

pytestmark = pytest.mark.skipif(
    not isinstance(caches["default"], RedisCache),
    reason="round trips are Redis's; the local-memory cache has none to count",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch, org):
    monkeypatch.setattr(KeyRateThrottle, "timer", staticmethod(lambda: NOON + 10))
    monkeypatch.setattr(DailyQuotaThrottle, "timer", staticmethod(lambda: NOON + 10))
    quota_budgets.discard()
    yield
    quota_budgets.discard()


@pytest.fixture
def round_trips(monkeypatch):
    """Count this thread's writes to any Redis connection (each is one round trip)."""
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
    """Verify the key: the first request loads and caches it, the second is answered from there."""
    assert whoami(client).status_code == 200
    assert whoami(client).status_code == 200
    assert verified_keys.get(key.pk) is not None


def whoami(client):
    return client.get("/api/v1/whoami")


def used(key):
    return sum(n for (key_id, _day), n in usage_counter.pending().items() if key_id == key.pk)


def test_a_warm_request_without_a_limit_makes_no_round_trip(api, org, make_key, round_trips):
    key, token = make_key(org)
    client = api(token)
    warm(client, key)
    round_trips.clear()
    assert whoami(client).status_code == 200
    assert round_trips == []
    assert used(key) == 3  # counted all the same, in this process


def test_a_warm_request_of_a_limited_key_makes_one_round_trip(api, org, make_key, round_trips):
    key, token = make_key(org, rate_limit="5/min")
    client = api(token)
    warm(client, key)
    round_trips.clear()
    response = whoami(client)
    assert response.status_code == 200
    assert len(round_trips) == 1
    assert response["RateLimit-Remaining"] == "2"


def test_a_quota_far_from_its_end_costs_no_round_trip(api, org, make_key, round_trips):
    organization_update(organization=org, actor=SYSTEM, daily_request_quota=10_000)
    key, token = make_key(org)
    client = api(token)
    warm(client, key)  # no slice yet: each of the two asks Redis for one unit
    quota_budgets.maintain()  # the background thread's turn: twice the demand it saw
    round_trips.clear()
    assert [whoami(client).status_code for _ in range(4)] == [200] * 4
    assert round_trips == []
    org.refresh_from_db()
    assert DailyQuotaThrottle().used(org) == 6  # the slice was counted in Redis when handed out


def test_a_missing_scope_spends_neither_rate_nor_quota(api, org, make_key):
    organization_update(organization=org, actor=SYSTEM, daily_request_quota=100)
    key, token = make_key(org, scopes=["keys:read"], rate_limit="3/min")
    client = api(token)
    warm(client, key)
    response = client.post("/api/v1/keys", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response["RateLimit-Remaining"] == "1"
    org.refresh_from_db()
    assert DailyQuotaThrottle().used(org) == 2
    assert used(key) == 3  # authenticated, so counted, as before
