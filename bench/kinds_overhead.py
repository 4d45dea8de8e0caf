"""What the key kinds add to each request, in-process: `python bench/kinds_overhead.py`.

It times the three per-request hooks the kinds added — the kind check that
authentication calls, the per-address throttle, and the CORS middleware's view
check — for a secret key (every existing caller) and a publishable key, and
prints each as a ratio to one HMAC-SHA256 of a token (the floor of any
authentication, measured in the same run). Nothing here touches a database,
Redis or the network; the per-address throttle's counter is the local-memory
cache, so its figure is the hook's own CPU, not a Redis round trip.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")

import django

django.setup()

from django.core.cache.backends.locmem import LocMemCache  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from rest_framework.request import Request  # noqa: E402

from apikeys import kinds, tokens  # noqa: E402
from apikeys.address_throttle import PublishableAddressThrottle  # noqa: E402
from apikeys.cors import PublishableKeyCorsMiddleware  # noqa: E402
from apikeys.models import APIKey  # noqa: E402
from orgs.models import Organization  # noqa: E402

CALLS = 20_000
REPEATS = 7


def best_of(fn) -> float:
    """Return the fastest mean time per call in microseconds."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(CALLS):
            fn()
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best * 1e6


class PublishableView:
    allow_publishable_keys = True


class SecretView:
    pass


def main() -> None:
    organization = Organization(pk=1, slug="bench", publishable_rate_limit="1000000/s")
    secret = APIKey(pk="A" * 12, organization=organization, kind="secret", environment="live")
    public = APIKey(
        pk="B" * 12,
        organization=organization,
        kind="publishable",
        environment="live",
        allowed_origins=["https://shop.example.com", "https://*.example.org"],
    )
    factory = RequestFactory()
    raw = factory.get(
        "/api/v1/widget/bots/x", HTTP_ORIGIN="https://a.example.org", REMOTE_ADDR="203.0.113.9"
    )
    request = Request(raw, parser_context={"view": PublishableView()})
    secret_request = Request(factory.get("/api/v1/whoami"), parser_context={"view": SecretView()})
    token = tokens.generate("live").token
    throttle = PublishableAddressThrottle()
    throttle.cache = LocMemCache("bench", {})
    middleware = PublishableKeyCorsMiddleware(lambda r: None)

    def secret_view_func():
        return None

    secret_view_func.cls = SecretView

    floor = best_of(lambda: tokens.hash_token(token))
    rows = [
        ("kind check, secret key", lambda: kinds.refusal(secret_request, secret)),
        ("kind check, publishable key (origin matched)", lambda: kinds.refusal(request, public)),
        ("per-address throttle, secret key", lambda: _throttle(throttle, secret_request, secret)),
        ("per-address throttle, publishable key", lambda: _throttle(throttle, request, public)),
        (
            "CORS middleware, view without publishable keys",
            lambda: middleware.process_view(raw, secret_view_func, (), {}),
        ),
    ]
    print(f"baseline: one HMAC-SHA256 of a token = {floor:.2f} µs (1.00×)")
    for label, fn in rows:
        cost = best_of(fn)
        print(f"{label:<50} {cost:6.2f} µs  {cost / floor:5.2f}× the HMAC")


def _throttle(throttle, request, key) -> None:
    request._user, request._auth = None, key  # as authentication leaves them
    throttle.allow_request(request, None)


if __name__ == "__main__":
    main()
