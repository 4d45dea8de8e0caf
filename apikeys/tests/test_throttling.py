import contextlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from apikeys.services import api_key_update
from apikeys.throttling import DailyQuotaThrottle, KeyRateThrottle
from audit.actors import Actor
from config.errors import QuotaExceeded, RateLimited
from config.rates import parse_rate
from orgs.services import organization_update

SYSTEM = Actor.system("test")
NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SpyCache:
    """A cache that notes every use (and holds nothing)."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name):
        self.used.append(name)
        raise ConnectionError("spy cache")


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(NOON + 10)
    monkeypatch.setattr(KeyRateThrottle, "timer", staticmethod(clock))
    monkeypatch.setattr(DailyQuotaThrottle, "timer", staticmethod(clock))
    return clock


def whoami(client):
    return client.get("/api/v1/whoami")


def test_a_5_per_minute_key_gets_its_sixth_request_refused(api, org, make_key, clock):
    key, token = make_key(org, rate_limit="5/min")
    client = api(token)
    for spent, remaining in enumerate((4, 3, 2, 1, 0), start=1):
        response = whoami(client)
        assert response.status_code == 200
        assert response["RateLimit-Limit"] == "5"
        assert response["RateLimit-Remaining"] == str(remaining)
        assert response["RateLimit-Reset"] == str(12 * spent)  # until the budget is whole
    response = whoami(client)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response["Retry-After"] == "12"  # one request comes back every 60/5 s
    assert response["RateLimit-Remaining"] == "0"
    clock.now += 12
    assert whoami(client).status_code == 200
    assert whoami(client).status_code == 429


def test_no_second_burst_at_a_window_edge(api, org, make_key, clock):
    """Fixed windows let a key send its limit twice in two seconds around a minute's edge."""
    _, token = make_key(org, rate_limit="5/min")
    client = api(token)
    clock.now = NOON + 59
    assert [whoami(client).status_code for _ in range(5)] == [200] * 5
    clock.now = NOON + 61  # a new calendar minute: a fixed window would allow five more
    assert whoami(client).status_code == 429
    clock.now = NOON + 59 + 12
    assert [whoami(client).status_code for _ in range(2)] == [200, 429]
    clock.now = NOON + 59 + 60 + 12  # a span of 72 s held at most 5 + ⌊72·5/60⌋ = 11
    assert [whoami(client).status_code for _ in range(6)] == [200] * 5 + [429]


def test_the_organisation_default_applies_unless_the_key_has_its_own(api, org, make_key, clock):
    organization_update(organization=org, actor=SYSTEM, default_rate_limit="2/s")
    _, plain = make_key(org)
    _, own = make_key(org, rate_limit="3/h")
    assert [whoami(api(plain)).status_code for _ in range(3)] == [200, 200, 429]
    responses = [whoami(api(own)) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0]["RateLimit-Limit"] == "3"
    assert int(responses[-1]["Retry-After"]) == 3600 // 3


def test_each_key_has_its_own_budget(api, org, make_key, clock):
    _, first = make_key(org, rate_limit="1/min")
    _, second = make_key(org, rate_limit="1/min")
    assert whoami(api(first)).status_code == 200
    assert whoami(api(second)).status_code == 200
    assert whoami(api(first)).status_code == 429


def test_a_key_without_a_limit_pays_nothing(api, org, make_key, monkeypatch):
    spy = SpyCache()
    monkeypatch.setattr(KeyRateThrottle, "cache", spy)
    monkeypatch.setattr(DailyQuotaThrottle, "cache", spy)
    _, token = make_key(org)
    response = whoami(api(token))
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response
    assert spy.used == []
    _, limited = make_key(org, rate_limit="5/min")
    whoami(api(limited))
    assert spy.used != []


def test_a_refusal_for_a_missing_scope_shows_the_budget_without_spending_it(
    api, org, make_key, clock
):
    _, token = make_key(org, scopes=["keys:read"], rate_limit="2/min")
    client = api(token)
    assert whoami(client)["RateLimit-Remaining"] == "1"
    response = client.post("/api/v1/keys", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response["RateLimit-Remaining"] == "1"
    assert whoami(client)["RateLimit-Remaining"] == "0"


def test_a_changed_default_holds_on_the_next_request(api, org, make_key, clock):
    _, token = make_key(org)
    client = api(token)
    assert whoami(client).status_code == 200  # verified and cached without a limit
    organization_update(organization=org, actor=SYSTEM, default_rate_limit="1/min")
    assert whoami(client).status_code == 200
    assert whoami(client).status_code == 429
    organization_update(organization=org, actor=SYSTEM, default_rate_limit=None)
    assert whoami(client).status_code == 200


def test_a_changed_key_limit_holds_on_the_next_request(api, org, make_key, clock):
    key, token = make_key(org, rate_limit="1/min")
    client = api(token)
    assert whoami(client).status_code == 200
    assert whoami(client).status_code == 429
    api_key_update(key=key, actor=SYSTEM, rate_limit="10/min")
    response = whoami(client)
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "10"


def test_limits_hold_across_processes_sharing_redis(org, make_key, clock, redis_cache):
    """Two throttles on one Redis (two processes' worth) draw on one budget."""
    key, _ = make_key(org, rate_limit="3/min")
    one, two = KeyRateThrottle(), KeyRateThrottle()
    one.cache = two.cache = redis_cache
    request = SimpleNamespace(auth=key)
    assert one.allow_request(request, None)
    assert two.allow_request(request, None)
    assert one.allow_request(request, None)
    with pytest.raises(RateLimited) as refused:
        two.allow_request(request, None)
    assert refused.value.retry_after == 20
    assert request.keyward.headers["RateLimit-Remaining"] == "0"


def test_an_unreachable_cache_lets_requests_through(api, org, make_key, monkeypatch):
    from django.core.cache.backends.redis import RedisCache

    dead = RedisCache("redis://127.0.0.1:18599/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})
    monkeypatch.setattr(KeyRateThrottle, "cache", dead)
    monkeypatch.setattr(DailyQuotaThrottle, "cache", dead)
    org.daily_request_quota = 1
    org.save()
    _, token = make_key(org, rate_limit="1/min")
    client = api(token)
    assert [whoami(client).status_code for _ in range(3)] == [200, 200, 200]


# Daily quota


@pytest.fixture
def quota_org(make_org):
    return make_org(daily_request_quota=3)


def test_the_quota_refuses_live_keys_once_used_up_and_lets_test_keys_through(
    api, quota_org, make_key, clock
):
    _, live = make_key(quota_org)
    _, other_live = make_key(quota_org)
    _, test = make_key(quota_org, environment="test")
    assert [whoami(api(live)).status_code for _ in range(2)] == [200, 200]
    assert whoami(api(other_live)).status_code == 200
    response = whoami(api(live))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert whoami(api(other_live)).status_code == 403
    assert [whoami(api(test)).status_code for _ in range(5)] == [200] * 5
    assert DailyQuotaThrottle().used(quota_org) == 3


def test_the_quota_comes_back_at_midnight_utc(api, quota_org, make_key, clock):
    _, live = make_key(quota_org)
    assert [whoami(api(live)).status_code for _ in range(4)] == [200, 200, 200, 403]
    clock.now = datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC).timestamp()
    assert whoami(api(live)).status_code == 403
    clock.now = datetime(2026, 3, 3, 0, 0, 0, tzinfo=UTC).timestamp()
    assert whoami(api(live)).status_code == 200


def test_refused_requests_do_not_use_up_a_raised_quota(api, quota_org, make_key, clock):
    _, live = make_key(quota_org)
    assert [whoami(api(live)).status_code for _ in range(6)] == [200, 200, 200, 403, 403, 403]
    organization_update(organization=quota_org, actor=SYSTEM, daily_request_quota=4)
    assert [whoami(api(live)).status_code for _ in range(2)] == [200, 403]


def test_test_keys_and_organisations_without_a_quota_pay_nothing(
    api, org, make_org, make_key, monkeypatch
):
    spy = SpyCache()
    monkeypatch.setattr(DailyQuotaThrottle, "cache", spy)
    monkeypatch.setattr(KeyRateThrottle, "cache", spy)
    _, live = make_key(org)
    quota_org = make_org(daily_request_quota=1)
    _, test = make_key(quota_org, environment="test")
    assert whoami(api(live)).status_code == 200
    assert whoami(api(test)).status_code == 200
    assert spy.used == []
    _, counted = make_key(quota_org)
    whoami(api(counted))
    assert spy.used != []


def test_the_quota_is_shared_through_redis(api, quota_org, make_key, clock, redis_cache):
    one, two = DailyQuotaThrottle(), DailyQuotaThrottle()
    one.cache = two.cache = redis_cache
    key, _ = make_key(quota_org)

    request = SimpleNamespace(auth=key)
    assert one.allow_request(request, None)
    assert two.allow_request(request, None)
    assert one.allow_request(request, None)
    with pytest.raises(QuotaExceeded):
        two.allow_request(request, None)
    assert one.used(quota_org) == 3


def quota_process(redis_cache):
    """A DailyQuotaThrottle as one more process sees it: its own slices, the shared Redis."""
    from apikeys.throttling import QuotaBudgets

    throttle = DailyQuotaThrottle()
    throttle.cache = redis_cache
    throttle.budgets = QuotaBudgets()
    return throttle


def spend(throttle, request) -> bool:
    try:
        return throttle.allow_request(request, None)
    except QuotaExceeded:
        return False


def test_the_quota_is_exact_at_its_end_across_processes(make_org, make_key, clock, redis_cache):
    """Slices far from the end, one unit per round trip near it; never past the quota."""
    organization = make_org(daily_request_quota=100)
    key, _ = make_key(organization)
    request = SimpleNamespace(auth=key)
    one, two, three = (quota_process(redis_cache) for _ in range(3))
    served, from_slices = 0, 0
    for i in range(400):
        process = (one, two, three)[i % 3]
        before = process.used(organization)
        allowed = spend(process, request)
        served += allowed
        from_slices += allowed and process.used(organization) == before  # no unit asked for
        assert process.used(organization) <= 100  # handed out, never past the quota
        if i % 7 == 6:  # the background threads' turns
            for each in (one, two, three):
                each.budgets.maintain(each)
    assert from_slices > 40  # most requests far from the end waited for nothing
    assert served <= 100
    held = sum(b.left for each in (one, two, three) for b in each.budgets._budgets.values())
    assert served + held == 100  # a refusal came only once every unit was handed out
    for each in (one, two, three):
        each.budgets.give_back_all(each)  # a graceful stop, or a second of idleness
    while spend(one, request):
        served += 1
    assert served == 100
    assert one.used(organization) == 100
    assert not spend(two, request) and not spend(three, request)


def test_a_slice_is_never_more_than_a_sixteenth_of_what_is_left(
    make_org, make_key, clock, redis_cache
):
    organization = make_org(daily_request_quota=160)
    key, _ = make_key(organization)
    request = SimpleNamespace(auth=key)
    process = quota_process(redis_cache)
    for _ in range(60):
        spend(process, request)  # a busy process: it wants a large slice
    process.budgets.maintain(process)
    (budget,) = process.budgets._budgets.values()
    assert budget.left == (160 - 60) // 16


class CountingThrottle(KeyRateThrottle):
    """A rate throttle that counts its round trips made on a request's behalf."""

    single = 0
    single_allowed = 0
    refills = 0

    def take(self, name, rate, now, want, back=0):
        taken, verdict = super().take(name, rate, now, want, back)
        self.single += want == 1
        self.single_allowed += want == 1 and taken == 1
        return taken, verdict

    def refill(self, name, rate, now):
        self.refills += 1
        return super().refill(name, rate, now)


def rate_process(redis_cache):
    """A KeyRateThrottle as one more process sees it: its own slices, the shared Redis."""
    from apikeys.throttling import RateSlices

    throttle = CountingThrottle()
    throttle.cache = redis_cache
    throttle.slices = RateSlices()
    return throttle


def test_slices_of_a_fast_key_overshoot_by_at_most_their_lifetime(
    org, make_key, clock, redis_cache
):
    from apikeys.throttling import RateSlices

    key, _ = make_key(org, rate_limit="600/min")  # a burst of 600, then 10 a second
    request = SimpleNamespace(auth=key)
    one, two = rate_process(redis_cache), rate_process(redis_cache)
    start, seconds, offered = clock.now, 6, 200  # 200 a second from two processes
    admitted = 0
    for i in range(seconds * offered):
        clock.now = start + i / offered
        with contextlib.suppress(RateLimited):
            admitted += (one, two)[i % 2].allow_request(request, None)
        if i % (offered // 4) == offered // 4 - 1:  # every 0.25 s: the background threads
            one.slices.maintain(one)
            two.slices.maintain(two)
    rate = 600 / 60
    assert admitted <= 600 + (seconds + RateSlices.lifetime) * rate  # the bound, stated
    assert admitted >= 600 + (seconds - 1) * rate  # and no starving either
    # Most of what was let through came from slices, without a round trip (refusals ask Redis).
    assert one.single_allowed + two.single_allowed < admitted / 2


@pytest.mark.parametrize("text", ["5/min", "100/s", "3/h"])
def test_slow_keys_and_per_second_rates_are_never_sliced(org, make_key, clock, redis_cache, text):
    key, _ = make_key(org, rate_limit=text)
    request = SimpleNamespace(auth=key)
    process = rate_process(redis_cache)
    for _ in range(3):
        process.slices.maintain(process)
        with contextlib.suppress(RateLimited):
            process.allow_request(request, None)
    assert process.single == 3  # every request decided in Redis, exactly


def test_a_request_that_finds_the_slice_empty_takes_some_for_the_next_ones(
    org, make_key, clock, redis_cache
):
    """Between two turns of the background thread, a busy key's requests mostly wait for nothing."""
    from apikeys.throttling import RateSlices

    key, _ = make_key(org, rate_limit="6000/min")  # 100 a second: refills of 12
    request = SimpleNamespace(auth=key)
    process = rate_process(redis_cache)
    assert process.slices.refill_size(parse_rate("6000/min")) == 12
    for _ in range(120):  # no turn of the background thread at all
        assert process.allow_request(request, None)
    assert process.refills == 10  # one round trip per 12 requests, not one each
    assert request.keyward.headers["RateLimit-Remaining"] == str(6000 - 120)
    clock.now += RateSlices.lifetime  # units held past their lifetime are not used
    assert process.allow_request(request, None)
    assert process.refills == 11


def test_refills_keep_two_processes_within_the_bound(org, make_key, clock, redis_cache):
    from apikeys.throttling import RateSlices

    key, _ = make_key(org, rate_limit="2400/min")  # a burst of 2,400, then 40 a second
    request = SimpleNamespace(auth=key)
    one, two = rate_process(redis_cache), rate_process(redis_cache)
    assert one.slices.refill_size(parse_rate("2400/min")) == 5
    start, seconds, offered = clock.now, 4, 1000  # past the burst, from two processes
    admitted = 0
    for i in range(seconds * offered):
        clock.now = start + i / offered
        with contextlib.suppress(RateLimited):
            admitted += (one, two)[i % 2].allow_request(request, None)
        if i % (offered // 2) == 0:  # the background threads run late: every 0.5 s
            one.slices.maintain(one)
            two.slices.maintain(two)
    rate = 2400 / 60
    assert admitted <= 2400 + (seconds + RateSlices.lifetime) * rate
    assert admitted >= 2400 + (seconds - 1) * rate
