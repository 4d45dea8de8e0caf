"""Throttles for Keyward keys: each key's rate limit, and its organisation's daily quota."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.cache import cache as default_cache
from rest_framework.throttling import BaseThrottle

from apikeys import kinds
from apikeys.counters import Script, backend_of, incr_with_ttl, redis_client, redis_commands
from apikeys.models import APIKey
from apikeys.request_state import request_state
from config.errors import QuotaExceeded, RateLimited
from config.rates import MalformedRate, Rate, parse_rate
from orgs.models import Organization

logger = logging.getLogger("keyward.throttling")

DAY = 86400


@dataclass(frozen=True)
class KeyLimits:
    """What the throttles decide from a key and its organisation alone, worked out once.

    Authentication puts a cached key's limits on the request's copy of the key
    (`_keyward_limits`), so a warm request's throttles read them instead of
    working them out again; they change only with the key or its organisation,
    and either change drops the cached key (apikeys/cache.py).
    """

    rate: tuple[Rate, str] | None
    quota: int | None  # the organisation's daily quota, if this key counts against it
    address_rate: Rate | None


def key_limits(key: APIKey) -> KeyLimits:
    """Work out a key's limits (see KeyLimits)."""
    from apikeys.address_throttle import address_rate

    counted = kinds.counts_against_quota(key)
    return KeyLimits(
        rate=_effective_rate(key),
        quota=key.organization.daily_request_quota if counted else None,
        address_rate=address_rate(key),
    )


def limits_of(key: APIKey) -> KeyLimits:
    """Return the limits authentication worked out for this request's key, else work them out."""
    return key.__dict__.get("_keyward_limits") or key_limits(key)


def effective_rate(key: APIKey) -> tuple[Rate, str] | None:
    """Return the rate a key is held to and where it comes from ("key" or "organization")."""
    return limits_of(key).rate


def _effective_rate(key: APIKey) -> tuple[Rate, str] | None:
    text, source = key.rate_limit, "key"
    if not text:
        text, source = kinds.organization_rate_limit(key), "organization"
    if not text:
        return None
    try:
        return parse_rate(text), source
    except MalformedRate:
        logger.error("Ignoring the malformed rate %r of key %s.", text, key.pk)
        return None


# GCRA (the generic cell rate algorithm), kept as the budget's *level*: how many requests
# are outstanding at a time stamp. Each request adds exactly one, and the level drains
# by limit/period per second. Equivalent to a theoretical arrival time, TAT = stamp +
# level·period/limit, but exact where an absolute TAT was not: N requests at one
# instant always make a level of exactly N, whatever N and the period (a TAT of
# 1.7e12 ms in a double cannot carry an interval of a few µs, and a 60/s key was let
# through 59 times). A request conforms when level + 1 <= limit; up to `want` are
# taken at once, after giving `back` units taken earlier. A clock behind the stamp
# (another host's) drains nothing and leaves the stamp where it is. The state lives
# a second longer than the budget takes to be whole again (a level of zero is the same
# as no state), so that a slow client or a skewed clock never loses it early. The Lua script
# below is the same computation on Redis: KEYS[1] holds "stamp:level" (stamp in ms);
# ARGV now (ms), period (ms), limit, want, back. Both return {taken, remaining, ms
# until the budget is whole again, ms until the next request may go}.
GCRA_SLACK = 1e-9  # of one request: rounding in the drain never costs a whole one

GCRA_LUA = """
local now, p, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local want, back = tonumber(ARGV[4]), tonumber(ARGV[5] or '0')
local stamp, level = now, 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, l = string.match(stored, '^([^:]+):(.+)$')
  stamp, level = tonumber(s), tonumber(l)
  if now > stamp then
    level = math.max(0, level - (now - stamp) * limit / p)
    stamp = now
  end
end
level = math.max(0, level - back)
local taken = math.max(0, math.min(want, math.floor(limit - level + 1e-9)))
level = level + taken
local retry = 0
if want > 0 and taken < 1 then retry = (level + 1 - limit) * p / limit end
if taken > 0 or back > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g:%.17g', stamp, level),
             'PX', math.ceil(level * p / limit + (stamp - now)) + 1000)
end
return {taken, math.floor(limit - level + 1e-9), string.format('%.3f', level * p / limit),
        string.format('%.3f', retry)}
"""
_gcra = Script(GCRA_LUA)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    reset: int  # seconds until the whole budget is back
    retry_after: int  # seconds until the next request may go (0 when allowed)


def gcra(
    stored: tuple[float, float] | None, now: float, rate: Rate, want: int, back: int = 0
) -> tuple[int, Verdict, tuple[float, float] | None]:
    """Take up to `want` requests from a stored (stamp, level); the local-memory GCRA_LUA.

    Returns how many were taken, the verdict, and the state to store (None: unchanged).
    """
    stamp, level = now, 0.0
    if stored is not None:
        stamp, level = stored
        if now > stamp:
            level = max(0.0, level - (now - stamp) * rate.limit / rate.period)
            stamp = now
    level = max(0.0, level - back)
    taken = max(0, min(want, math.floor(rate.limit - level + GCRA_SLACK)))
    level += taken
    per_request = rate.period / rate.limit
    retry = (level + 1 - rate.limit) * per_request if want > 0 and taken < 1 else 0.0
    verdict = Verdict(
        allowed=taken >= 1 or want == 0,
        remaining=math.floor(rate.limit - level + GCRA_SLACK),
        reset=_up(level * per_request),
        retry_after=_up(retry),
    )
    return taken, verdict, (stamp, level) if taken or back else None


def _up(seconds: float) -> int:
    return max(0, math.ceil(seconds - 1e-9))


class KeyRateThrottle(BaseThrottle):
    """Hold each key to its `rate_limit`, else its organisation's default, across processes.

    GCRA, shared through Redis by every process and host: a key limited to N per
    period may send N at once, then one every period/N — never two bursts back to
    back, which fixed windows allowed at every window edge. In any span of t
    seconds a key gets at most N + ⌊t·N/period⌋ requests. One round trip per
    request of a limited key (a Lua script), none for a key without a limit.
    Every response of a limited key carries `RateLimit-Limit`,
    `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the whole budget
    is back); a refusal carries `Retry-After` (seconds until the next request may
    go). With the local-memory cache each process keeps its own budget.
    """

    cache = default_cache
    timer = staticmethod(time.time)
    cache_format = "keyward:rate:{key_id}:{period}:{limit}"
    _local_lock = threading.Lock()
    slices: RateSlices  # set below the class: this process's slices of fast keys' budgets

    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, APIKey):
            return True
        state = request_state(request)
        state.rate_checked = True
        found = limits_of(key).rate
        if found is None:
            return True
        rate = found[0]
        try:
            verdict = self.decide(key, rate, count=True)
        except Exception:  # a limit is not worth an outage: let the request through
            logger.warning("Shared cache unreachable; rate limits are not being enforced.")
            return True
        state.add_headers(self.headers(rate, verdict))
        if not verdict.allowed:
            self.wait_seconds = verdict.retry_after
            raise RateLimited(
                f"This key may make {rate.text} requests. "
                f"Try again in {verdict.retry_after} seconds.",
                retry_after=verdict.retry_after,
            )
        return True

    def decide(self, key: APIKey, rate: Rate, count: bool) -> Verdict:
        """Count one request of `key` (or only look, without `count`) and return the verdict."""
        name = self.counter_name(key, rate)
        now = self.timer()
        commands = redis_commands(self.cache)
        if commands is not None:
            if count and self.slices.eligible(rate):
                verdict = self.slices.take(name, rate, now)
                if verdict is not None:
                    return verdict  # from this process's slice: no round trip
                return self.refill(name, rate, now)
            return self.take(name, rate, now, 1 if count else 0)[1]
        with self._local_lock:  # local memory: one process, the same algorithm
            _taken, verdict, state = gcra(self.cache.get(name), now, rate, 1 if count else 0)
            if state is not None:
                stamp, level = state
                lifetime = level * rate.period / rate.limit + (stamp - now)
                self.cache.set(name, state, math.ceil(lifetime) + 1)
        return verdict

    def take(
        self, name: str, rate: Rate, now: float, want: int, back: int = 0
    ) -> tuple[int, Verdict]:
        """Take up to `want` requests' worth of the key's budget in Redis (giving `back` first)."""
        commands = redis_commands(self.cache)
        reply = commands.script(
            _gcra,
            [backend_of(self.cache).make_and_validate_key(name)],
            [repr(now * 1000), rate.period * 1000, rate.limit, want, back],
        )
        taken, remaining, reset_ms, retry_ms = (float(v) for v in reply)
        verdict = Verdict(
            taken >= 1 or want == 0, int(remaining), _up(reset_ms / 1000), _up(retry_ms / 1000)
        )
        return int(taken), verdict

    def refill(self, name: str, rate: Rate, now: float) -> Verdict:
        """Decide a fast key's request that found this process's slice empty, in one round trip.

        It takes a few units more than itself (RateSlices.refill_size) for the
        requests after it, and gives back in the same script what the slice held
        past its lifetime.
        """
        want, stale = self.slices.refill_size(rate), self.slices.expired(name, now)
        taken, verdict = self.take(name, rate, now, want, stale)
        if taken > 1:
            self.slices.add(name, rate, now, taken - 1, verdict)
            return Verdict(True, verdict.remaining + taken - 1, verdict.reset, 0)
        return verdict

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)

    def counter_name(self, key: APIKey, rate: Rate) -> str:
        return self.cache_format.format(key_id=key.pk, period=rate.period, limit=rate.limit)

    @staticmethod
    def headers(rate: Rate, verdict: Verdict) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(rate.limit),
            "RateLimit-Remaining": str(max(0, verdict.remaining)),
            "RateLimit-Reset": str(verdict.reset),
        }

    def current_headers(self, key: APIKey) -> dict[str, str]:
        """Return the headers of a limited key without counting a request (else {})."""
        found = effective_rate(key)
        if found is None:
            return {}
        try:
            return self.headers(found[0], self.decide(key, found[0], count=False))
        except Exception:
            return {}


@dataclass
class RateSlice:
    """Requests of one fast key's rate budget, taken from Redis by this process, unspent."""

    left: int = 0
    expires: float = 0.0  # wall clock: unspent units are not used after this
    remaining: int = 0  # what Redis said was left when the slice was taken
    reset_at: float = 0.0  # when Redis said the whole budget would be back
    taken: int = 0  # requests served from the slice since the last maintenance
    wanted: int = 0  # requests that found it empty since then
    used_at: float = 0.0


class RateSlices:
    """This process's slices of fast keys' rate budgets (Redis only).

    A key whose period is a minute or longer and whose rate allows at least two
    requests per `lifetime` is served from a slice: the background thread
    (apikeys/usage.py) takes from the key's GCRA state, once per turn, about twice
    what this process spent since its last turn (what it holds unspent goes back
    in the same script), and a request takes a unit from memory: no round trip.
    A unit is used within `lifetime` (half a second) of being taken, or never.
    Every unit is counted in the shared state when it is taken, so the slices can
    only move requests later, by at most `lifetime`: in any span of t seconds a
    key gets at most N + ⌊(t + lifetime)·N/period⌋ requests, lifetime·N/period
    more than without slices — at most 0.83 % of the limit for a per-minute
    rate, 0.014 % for a per-hour one. Slower keys and per-second rates are
    decided in Redis, one round trip each, exactly. A slice's `RateLimit-*`
    headers are those Redis gave when it was taken, less what was spent since.
    """

    lifetime = 0.5
    largest = 10_000

    def __init__(self) -> None:
        self._slices: dict[str, tuple[Rate, RateSlice]] = {}
        self._lock = threading.Lock()

    def eligible(self, rate: Rate) -> bool:
        return rate.period >= 60 and rate.limit * self.lifetime / rate.period >= 2

    def take(self, name: str, rate: Rate, now: float) -> Verdict | None:
        """Serve one request from the slice if it holds a fresh unit; else note the demand."""
        with self._lock:
            found = self._slices.get(name)
            if found is None or found[0] != rate:
                found = self._slices[name] = (rate, RateSlice())
            piece = found[1]
            piece.used_at = now
            if piece.left > 0 and now < piece.expires:
                piece.left -= 1
                piece.taken += 1
                return Verdict(True, piece.remaining + piece.left, _up(piece.reset_at - now), 0)
            piece.wanted += 1
            return None

    def refill_size(self, rate: Rate) -> int:
        """Return how many units a request that found the slice empty takes: itself and more.

        A quarter of what the key may send in a slice's lifetime, at most 16: enough
        that the requests after it wait for no round trip either until the next
        turn, too few to keep much of a slow key's budget from other processes.
        """
        return max(1, min(16, int(rate.limit * self.lifetime / rate.period / 4)))

    def expired(self, name: str, now: float) -> int:
        """Remove and return the units a slice holds past its lifetime (to be given back)."""
        with self._lock:
            found = self._slices.get(name)
            if found is None or found[1].left == 0 or now < found[1].expires:
                return 0
            stale, found[1].left = found[1].left, 0
            return stale

    def add(self, name: str, rate: Rate, now: float, units: int, verdict: Verdict) -> None:
        """Put `units` taken at `now` into the slice; they expire with the oldest it holds."""
        with self._lock:
            found = self._slices.get(name)
            if found is None or found[0] != rate:
                found = self._slices[name] = (rate, RateSlice(used_at=now))
            self._put(found[1], now, units, verdict)

    def _put(self, piece: RateSlice, now: float, units: int, verdict: Verdict) -> None:
        expires = now + self.lifetime
        if piece.left > 0 and piece.expires < expires:
            expires = piece.expires  # never lengthen the life of units taken earlier
        piece.left += units
        piece.expires = expires
        piece.remaining, piece.reset_at = verdict.remaining, now + verdict.reset

    def maintain(self, throttle: KeyRateThrottle | None = None) -> None:
        """Swap each busy key's slice for a fresh one; give back idle ones (background)."""
        throttle = throttle or KeyRateThrottle()
        if redis_client(throttle.cache) is None:
            return
        now = throttle.timer()
        work = []
        with self._lock:
            for name, (rate, piece) in list(self._slices.items()):
                demand, back = piece.taken + piece.wanted, piece.left
                piece.taken = piece.wanted = piece.left = 0
                if not demand and now - piece.used_at > 1.0:
                    del self._slices[name]
                want = min(self.largest, 2 * demand)
                if want or back:
                    work.append((name, rate, want, back))
        for name, rate, want, back in work:
            taken, verdict = throttle.take(name, rate, now, want, back)
            if taken:
                with self._lock:
                    found = self._slices.get(name)
                    if found is None or found[0] != rate:
                        found = self._slices[name] = (rate, RateSlice(used_at=now))
                    self._put(found[1], now, taken, verdict)

    def give_back_all(self, throttle: KeyRateThrottle | None = None) -> None:
        """Give back every unspent unit (a graceful stop)."""
        throttle = throttle or KeyRateThrottle()
        with self._lock:
            slices, self._slices = self._slices, {}
        if redis_client(throttle.cache) is None:
            return
        now = throttle.timer()
        for name, (rate, piece) in slices.items():
            if piece.left and now < piece.expires:
                throttle.take(name, rate, now, 0, piece.left)

    def discard(self) -> None:
        """Forget every slice (tests)."""
        with self._lock:
            self._slices.clear()


rate_slices = RateSlices()
KeyRateThrottle.slices = rate_slices


# The daily quota's shared counter counts units handed out to processes. KEYS[1] the
# counter; ARGV quota, how many units are wanted, the divisor (hand out at most what is
# left divided by it; 0: exactly what is wanted, if left), the counter's lifetime (s).
# Returns {units handed out, the counter after}. Never past the quota.
RESERVE_LUA = """
local quota, want, divisor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = quota - used
local grant = want
if divisor > 0 then grant = math.min(want, math.floor(left / divisor)) end
grant = math.min(grant, left)
if grant <= 0 then return {0, used} end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], ARGV[4], 'NX')
return {grant, used + grant}
"""
_reserve = Script(RESERVE_LUA)


@dataclass
class Budget:
    """Units of one organisation's quota for one day, handed to this process and unspent."""

    quota: int
    left: int = 0
    stale: int = 0  # units handed out under a quota that has since changed: to give back
    taken: int = 0  # requests that took a unit since the last maintenance
    wanted: int = 0  # requests that found none since the last maintenance
    used_at: float = 0.0


class QuotaBudgets:
    """This process's slices of organisations' daily quotas (Redis only).

    A request takes a unit from its organisation's slice: no wait. The
    background thread (apikeys/usage.py) hands out new slices before a slice
    runs dry, sized to what the process used since its last turn, and never more
    than 1/16 of what is left of the quota; it gives back a slice unused for a
    second. When less than 16 units are left, no slice is handed out: each
    request asks Redis for exactly one unit (one round trip), so the end of the
    quota is exact — the counter never passes the quota, and a request is
    refused only once every unit has been handed out. A unit held unspent by
    another process can make a request be refused early, until that process
    spends it or gives it back (within a second); a killed process's unspent
    units are lost for the rest of the day.
    """

    divisor = 16
    largest = 100
    idle_seconds = 1.0
    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._budgets: dict[tuple[int, date], Budget] = {}
        self._lock = threading.Lock()

    def take(self, organization_id: int, day: date, quota: int) -> bool:
        """Take one unit of this process's slice, if it holds one; note the demand if not."""
        with self._lock:
            budget = self._budgets.get((organization_id, day))
            if budget is None:
                budget = self._budgets[(organization_id, day)] = Budget(quota)
            budget.used_at = self.clock()
            if budget.quota != quota:  # the quota changed: give back, start from Redis
                budget.quota, budget.stale, budget.left = quota, budget.stale + budget.left, 0
            if budget.left > 0:
                budget.left -= 1
                budget.taken += 1
                return True
            budget.wanted += 1
            return False

    def reserve_one(self, throttle: DailyQuotaThrottle, name: str, quota: int) -> bool:
        """Ask Redis for exactly one unit for this request (the exact path)."""
        commands = redis_commands(throttle.cache)
        key = backend_of(throttle.cache).make_and_validate_key(name)
        granted, _used = commands.script(_reserve, [key], [quota, 1, 0, 2 * DAY])
        return int(granted) == 1

    def maintain(self, throttle: DailyQuotaThrottle | None = None) -> None:
        """Hand out slices where demand will need them; give back idle ones (background)."""
        throttle = throttle or DailyQuotaThrottle()
        if redis_client(throttle.cache) is None:
            return
        today = datetime.fromtimestamp(throttle.timer(), tz=UTC).date()
        now = self.clock()
        refill, give_back = [], []
        with self._lock:
            for (organization_id, day), budget in list(self._budgets.items()):
                demand = budget.taken + budget.wanted
                budget.taken = budget.wanted = 0
                if budget.stale:
                    give_back.append((organization_id, day, budget.stale))
                    budget.stale = 0
                if day != today:
                    del self._budgets[(organization_id, day)]  # yesterday's quota is over
                elif now - budget.used_at > self.idle_seconds:
                    if budget.left:
                        give_back.append((organization_id, day, budget.left))
                    del self._budgets[(organization_id, day)]
                elif demand and budget.left < demand:
                    want = min(self.largest, 2 * demand) - budget.left
                    refill.append((organization_id, day, budget.quota, want))
        commands = redis_commands(throttle.cache)
        backend = backend_of(throttle.cache)
        for organization_id, day, left in give_back:
            self._give_back(commands, backend, throttle, organization_id, day, left)
        for organization_id, day, quota, want in refill:
            key = backend.make_and_validate_key(throttle.counter_name_for(organization_id, day))
            granted, _used = commands.script(_reserve, [key], [quota, want, self.divisor, 2 * DAY])
            if int(granted):
                with self._lock:
                    budget = self._budgets.get((organization_id, day))
                    if budget is None:
                        budget = self._budgets[(organization_id, day)] = Budget(quota)
                    budget.left += int(granted)

    def give_back_all(self, throttle: DailyQuotaThrottle | None = None) -> None:
        """Give back every unspent unit (a graceful stop)."""
        throttle = throttle or DailyQuotaThrottle()
        commands = redis_commands(throttle.cache)
        with self._lock:
            budgets, self._budgets = self._budgets, {}
        if commands is None:
            return
        backend = backend_of(throttle.cache)
        for (organization_id, day), budget in budgets.items():
            if budget.left + budget.stale:
                left = budget.left + budget.stale
                self._give_back(commands, backend, throttle, organization_id, day, left)

    @staticmethod
    def _give_back(commands, backend, throttle, organization_id: int, day: date, left: int) -> None:
        key = backend.make_and_validate_key(throttle.counter_name_for(organization_id, day))
        commands.execute([("DECRBY", key, left)])

    def discard(self) -> None:
        """Forget every slice (tests)."""
        with self._lock:
            self._budgets.clear()


quota_budgets = QuotaBudgets()


class DailyQuotaThrottle(BaseThrottle):
    """Refuse a live or dev key once its organisation's daily quota is used up, until 00:00 UTC.

    The count is one counter per organisation and UTC day in the shared cache;
    with Redis it is spent through this process's slice (QuotaBudgets above), so
    a request far from the end of the quota waits for nothing, and the last
    units go one round trip at a time, exactly. The day is the request's own
    (UTC), so a request at 23:59:59.999 counts for that day and one at 00:00:00
    for the next. Test keys neither count nor get refused; an organisation
    without a quota costs nothing. A request this refuses was not served and
    counts for nothing.
    """

    cache = default_cache
    timer = staticmethod(time.time)
    cache_format = "keyward:quota:{organization_id}:{day}"
    budgets = quota_budgets

    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, APIKey):
            return True
        quota = limits_of(key).quota
        if quota is None:
            return True
        now = self.timer()
        if redis_client(self.cache) is not None:
            allowed = self._spend(key.organization_id, now, quota)
        else:
            allowed = self._count(key.organization_id, now, quota)
        if allowed is False:
            raise QuotaExceeded(
                f"The organisation's daily quota of {quota} requests is used up "
                "until 00:00 UTC. Test keys are not counted."
            )
        return True

    def _spend(self, organization_id: int, now: float, quota: int) -> bool | None:
        day = datetime.fromtimestamp(now, tz=UTC).date()
        if self.budgets.take(organization_id, day, quota):
            return True
        try:
            return self.budgets.reserve_one(self, self.counter_name(organization_id, now), quota)
        except Exception:
            logger.warning("Shared cache unreachable; daily quotas are not being enforced.")
            return None

    def _count(self, organization_id: int, now: float, quota: int) -> bool | None:
        """Another cache than Redis: one atomic counter, given back when over."""
        name = self.counter_name(organization_id, now)
        try:
            used = incr_with_ttl(self.cache, name, 2 * DAY)
        except Exception:
            logger.warning("Shared cache unreachable; daily quotas are not being enforced.")
            return None
        if used > quota:
            try:
                self.cache.decr(name)
            except Exception:  # gone or unreachable: the count only errs towards refusing
                logger.warning("Could not return a refused request to the quota counter.")
            return False
        return True

    def counter_name(self, organization_id: int, now: float) -> str:
        return self.counter_name_for(organization_id, datetime.fromtimestamp(now, tz=UTC).date())

    def counter_name_for(self, organization_id: int, day: date) -> str:
        return self.cache_format.format(organization_id=organization_id, day=day.isoformat())

    def used(self, organization: Organization) -> int:
        """Return how many live and dev requests count against today's quota so far.

        With Redis this counts the units handed out to processes: it can run ahead of
        the requests served by what processes hold unspent (for about a second).
        """
        try:
            return int(self.cache.get(self.counter_name(organization.pk, self.timer())) or 0)
        except Exception:
            return 0

    def resets_at(self) -> datetime:
        """Return the next 00:00 UTC."""
        today = datetime.fromtimestamp(self.timer(), tz=UTC).date()
        return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
