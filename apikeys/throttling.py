"""Throttles for Keyward keys: each key's rate limit, and its organisation's daily quota."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache as default_cache
from rest_framework.throttling import BaseThrottle

from apikeys import kinds
from apikeys.counters import incr_with_ttl
from apikeys.models import APIKey
from apikeys.request_state import request_state
from apikeys.roundtrip import claim
from config.errors import QuotaExceeded, RateLimited
from config.rates import MalformedRate, Rate, parse_rate
from orgs.models import Organization

logger = logging.getLogger("keyward.throttling")

DAY = 86400


def effective_rate(key: APIKey) -> tuple[Rate, str] | None:
    """Return the rate a key is held to and where it comes from ("key" or "organization")."""
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


class KeyRateThrottle(BaseThrottle):
    """Hold each key to its `rate_limit`, else its organisation's default, across processes.

    Windows are fixed and aligned to the clock (a 5/min key gets five requests
    per calendar minute), counted in the shared cache so that every process
    behind one Redis draws on one budget. A key without a limit costs nothing:
    no cache call at all. Every response of a limited key carries
    `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds).
    When authentication's round trip (apikeys/roundtrip.py) already counted the
    request in the same window, the throttle takes that count instead.
    """

    cache = default_cache
    timer = staticmethod(time.time)
    cache_format = "keyward:rate:{key_id}:{period}:{window}"

    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, APIKey):
            return True
        found = effective_rate(key)
        if found is None:
            return True
        rate = found[0]
        now = self.timer()
        name, ttl = self._counter(key, rate, now)
        count = claim(request, name)
        if count is None:
            try:
                count = self.increment(name, ttl)
            except Exception:  # a limit is not worth an outage: let the request through
                logger.warning("Shared cache unreachable; rate limits are not being enforced.")
                return True
        reset = self.seconds_to_reset(rate, now)
        request_state(request).add_headers(self.headers(rate, count, reset))
        if count > rate.limit:
            self.wait_seconds = reset
            raise RateLimited(
                f"This key may make {rate.text} requests. Try again in {reset} seconds.",
                retry_after=reset,
            )
        return True

    def increment(self, name: str, ttl: int) -> int:
        """Count one request in the window and return the window's count: one round trip."""
        return incr_with_ttl(self.cache, name, ttl)

    def shared_counter(self, key: APIKey) -> tuple[str, int] | None:
        """Return the counter a request with `key` adds to now and its lifetime; None if none."""
        found = effective_rate(key)
        return None if found is None else self._counter(key, found[0], self.timer())

    def _counter(self, key: APIKey, rate: Rate, now: float) -> tuple[str, int]:
        return self.counter_name(key, rate, int(now // rate.period)), rate.period + 60

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)

    def counter_name(self, key: APIKey, rate: Rate, window: int) -> str:
        return self.cache_format.format(key_id=key.pk, period=rate.period, window=window)

    @staticmethod
    def seconds_to_reset(rate: Rate, now: float) -> int:
        return max(1, math.ceil((int(now // rate.period) + 1) * rate.period - now))

    @staticmethod
    def headers(rate: Rate, count: int, reset: int) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(rate.limit),
            "RateLimit-Remaining": str(max(0, rate.limit - count)),
            "RateLimit-Reset": str(reset),
        }

    def current_headers(self, key: APIKey) -> dict[str, str]:
        """Return the headers of a limited key without counting a request (else {})."""
        found = effective_rate(key)
        if found is None:
            return {}
        rate = found[0]
        now = self.timer()
        try:
            count = int(self.cache.get(self.counter_name(key, rate, int(now // rate.period))) or 0)
        except Exception:
            return {}
        return self.headers(rate, count, self.seconds_to_reset(rate, now))


class DailyQuotaThrottle(BaseThrottle):
    """Refuse a live or dev key once its organisation's daily quota is used up, until 00:00 UTC.

    The count is one atomic counter per organisation and UTC day in the shared
    cache, so the request after the last allowed one is refused at once. Test
    keys neither count nor get refused; an organisation without a quota costs
    nothing. A request this refuses was not served and counts for nothing.
    A count made by authentication's round trip is taken over, as above.
    """

    cache = default_cache
    timer = staticmethod(time.time)
    cache_format = "keyward:quota:{organization_id}:{day}"

    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, APIKey) or not kinds.counts_against_quota(key):
            return True
        quota = key.organization.daily_request_quota
        if quota is None:
            return True
        name, ttl = self._counter(key)
        used = claim(request, name)
        if used is None:
            try:
                used = self.increment(name, ttl)
            except Exception:
                logger.warning("Shared cache unreachable; daily quotas are not being enforced.")
                return True
        if used > quota:
            self._give_back(name)
            raise QuotaExceeded(
                f"The organisation's daily quota of {quota} requests is used up "
                "until 00:00 UTC. Test keys are not counted."
            )
        return True

    def increment(self, name: str, ttl: int) -> int:
        """Count one request against the day's quota and return the day's count."""
        return incr_with_ttl(self.cache, name, ttl)

    def shared_counter(self, key: APIKey) -> tuple[str, int] | None:
        """Return the counter a request with `key` adds to now and its lifetime; None if none."""
        if not kinds.counts_against_quota(key) or key.organization.daily_request_quota is None:
            return None
        return self._counter(key)

    def _counter(self, key: APIKey) -> tuple[str, int]:
        return self.counter_name(key.organization_id, self.timer()), 2 * DAY

    def _give_back(self, name: str) -> None:
        try:
            self.cache.decr(name)
        except Exception:  # gone or unreachable: the count only errs towards refusing
            logger.warning("Could not return a refused request to the quota counter.")

    def counter_name(self, organization_id: int, now: float) -> str:
        day = datetime.fromtimestamp(now, tz=UTC).date()
        return self.cache_format.format(organization_id=organization_id, day=day.isoformat())

    def used(self, organization: Organization) -> int:
        """Return how many live and dev requests count against today's quota so far."""
        try:
            return int(self.cache.get(self.counter_name(organization.pk, self.timer())) or 0)
        except Exception:
            return 0

    def resets_at(self) -> datetime:
        """Return the next 00:00 UTC."""
        today = datetime.fromtimestamp(self.timer(), tz=UTC).date()
        return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
