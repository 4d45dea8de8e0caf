"""GCRA decides like exact arithmetic, in this process and on Redis.

The reference below is the algorithm in rational numbers: the level (requests
outstanding) drains by limit/period per second and each request adds one; a
request goes when level + 1 <= limit. Arrival times are multiples of 1/1024 s,
which floats hold exactly, so any difference is the implementation's rounding.
Before the budget was kept as a level, a 60/s key was let through 59 times in a
burst and a 10000/s key 10003 times.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys.throttling import KeyRateThrottle, gcra
from config.rates import PERIODS, Rate, parse_rate

NOON = 1_772_452_800  # 2026-03-02 12:00 UTC, whole seconds
TICK = Fraction(1, 1024)
# Rates once wrong by a request or more (a TAT of 1.7e12 ms in a double, rounded to µs).
RUNS = itertools.count()  # a fresh budget per example
ONCE_WRONG = ["60/s", "999/s", "10000/s", "7/h", "999/h", "3000/h", "1000/day", "10000/min"]


def reference(rate: Rate, ticks: list[int]) -> list[bool]:
    """Return which requests an exact GCRA lets through, for arrivals at NOON + tick/1024 s."""
    level, stamp, decisions = Fraction(0), None, []
    for tick in ticks:
        now = NOON + tick * TICK
        if stamp is not None and now > stamp:
            level = max(Fraction(0), level - (now - stamp) * rate.limit / rate.period)
        stamp = now if stamp is None or now > stamp else stamp
        allowed = level + 1 <= rate.limit
        level += allowed
        decisions.append(allowed)
    return decisions


def local(rate: Rate, ticks: list[int]) -> list[bool]:
    state, decisions = None, []
    for tick in ticks:
        taken, _verdict, stored = gcra(state, NOON + tick / 1024, rate, 1)
        state = stored or state
        decisions.append(taken == 1)
    return decisions


def on_redis(cache, rate: Rate, ticks: list[int], name: str) -> list[bool]:
    throttle = KeyRateThrottle()
    throttle.cache = cache
    return [throttle.take(name, rate, NOON + tick / 1024, 1)[0] == 1 for tick in ticks]


def arrivals(limit_most: int):
    """A rate and arrival ticks: bursts at one instant and gaps around the emission interval."""

    @st.composite
    def build(draw):
        rate = Rate(
            limit=(limit := draw(st.integers(1, limit_most))),
            period=(period := draw(st.sampled_from(sorted(PERIODS.values())))),
            text="",
        )
        interval = max(1, round(period * 1024 / limit))
        gaps = st.one_of(
            st.just(0),
            st.integers(0, 3 * interval),
            st.integers(interval - 2, interval + 2).filter(lambda gap: gap >= 0),
        )
        steps = draw(st.lists(gaps, min_size=1, max_size=120))
        return rate, [sum(steps[: i + 1]) for i in range(len(steps))]

    return build()


@pytest.mark.parametrize("text", ONCE_WRONG)
def test_a_burst_at_one_instant_is_exactly_the_limit(text):
    rate = parse_rate(text)
    decisions = local(rate, [0] * (rate.limit + 3))
    assert decisions.count(True) == rate.limit
    assert decisions[: rate.limit] == [True] * rate.limit


@given(arrivals(limit_most=10_000))
@settings(max_examples=300, deadline=None)
def test_the_local_budget_decides_as_exact_arithmetic_does(case):
    rate, ticks = case
    assert local(rate, ticks) == reference(rate, ticks)


def test_the_headers_count_down_to_zero_and_the_wait_is_one_interval():
    rate, state = parse_rate("60/s"), None
    for spent in range(1, 61):
        _taken, verdict, state = gcra(state, NOON, rate, 1)
        assert verdict.remaining == 60 - spent
    taken, verdict, unchanged = gcra(state, NOON, rate, 1)
    assert (taken, verdict.allowed, verdict.retry_after, verdict.reset) == (0, False, 1, 1)
    assert unchanged is None  # a refusal spends nothing
    assert gcra(state, NOON + 0.02, rate, 1)[0] == 1  # one request back every 1/60 s


@pytest.mark.parametrize("text", ONCE_WRONG)
def test_a_burst_at_one_instant_is_exactly_the_limit_on_redis(text, redis_cache):
    rate = parse_rate(text)
    # One round trip each, at a frozen instant while Redis's clock runs: the budget's
    # state lives a second past its drain, so 200 requests stay well within it.
    burst = min(rate.limit, 200)
    throttle = KeyRateThrottle()
    throttle.cache = redis_cache
    taken = [throttle.take(f"burst-{text}", rate, NOON, 1)[0] for _ in range(burst)]
    assert taken == [1] * burst
    rest, verdict = throttle.take(f"burst-{text}", rate, NOON, rate.limit)
    assert rest == rate.limit - burst
    assert (verdict.remaining, throttle.take(f"burst-{text}", rate, NOON, 1)[0]) == (0, 0)


@given(case=arrivals(limit_most=1_000))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_shared_budget_decides_as_exact_arithmetic_does(case, redis_cache):
    rate, ticks = case
    name = f"exact-{next(RUNS)}"
    assert on_redis(redis_cache, rate, ticks, name) == reference(rate, ticks)
