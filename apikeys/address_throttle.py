"""The per-visitor limit of publishable keys: each key, per client address.

A publishable key sits in a web page, so anyone may copy it; its own rate limit
(`KeyRateThrottle`) caps the key as a whole, and this throttle caps what any one
address can do with it — the organisation's `publishable_rate_limit` (default
`60/min`), counted per key and address (an IPv6 client by its /64) in the
shared cache, in fixed clock-aligned windows. Secret keys cost nothing here.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.core.cache import cache as default_cache
from rest_framework.throttling import BaseThrottle

from apikeys.abuse import offender_of
from apikeys.counters import incr_with_ttl
from apikeys.models import APIKey
from apikeys.throttling import limits_of
from config.errors import RateLimited
from config.net import client_ip
from config.rates import MalformedRate, Rate, parse_rate

logger = logging.getLogger("keyward.throttling")


def address_rate(key: APIKey) -> Rate | None:
    """Return the per-address rate a publishable key is held to, or None."""
    if not key.is_publishable:
        return None
    text = key.organization.publishable_rate_limit
    if not text:
        return None
    try:
        return parse_rate(text)
    except MalformedRate:
        logger.error("Ignoring the malformed publishable rate %r of key %s.", text, key.pk)
        return None


class PublishableAddressThrottle(BaseThrottle):
    """Hold a publishable key to its organisation's `publishable_rate_limit` per client address."""

    cache = default_cache
    timer = staticmethod(time.time)
    cache_format = "keyward:pubaddr:{key_id}:{address}:{period}:{window}"

    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, APIKey):
            return True
        rate = limits_of(key).address_rate
        if rate is None:
            return True
        target = getattr(request, "_request", request)
        address = offender_of(getattr(target, "client_ip", None) or client_ip(target))
        now = self.timer()
        window = int(now // rate.period)
        name = self.cache_format.format(
            key_id=key.pk, address=address or "unknown", period=rate.period, window=window
        )
        try:
            count = incr_with_ttl(self.cache, name, rate.period + 60)
        except Exception:  # a limit is not worth an outage: let the request through
            logger.warning("Shared cache unreachable; per-address limits are not being enforced.")
            return True
        if count > rate.limit:
            reset = max(1, math.ceil((window + 1) * rate.period - now))
            self.wait_seconds = reset
            raise RateLimited(
                f"This publishable key allows {rate.text} requests from each address. "
                f"Try again in {reset} seconds.",
                retry_after=reset,
            )
        return True

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)
