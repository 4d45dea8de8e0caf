"""One authenticate() call in-process, against its floor: `make bench-floor`.

The floor is what no implementation can skip: parse the token (one regular
expression and the CRC-32 checksum) and compute one HMAC-SHA256 to compare
with the stored hash. Everything above it is the price of the code path: the
verified-key cache (trusted under this process's lease, no round trip), the
per-request copy of the cached state, the state checks, the usage count.
Runs against PostgreSQL (kw_bench, recreated) and Redis
(redis://127.0.0.1:6379/11; both can be moved, docs/harness.md), the production
configuration.

Each figure is the best of several repeats of many calls (wall clock, like
timeit), so that other load on the machine inflates it as little as possible.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import bench_env, database_name, manage, redis_url
from harness.postgres import recreate_database

DATABASE = database_name("bench")
REDIS_URL = redis_url("bench")


def best_of(fn, calls: int, repeats: int) -> float:
    """Return the fastest mean time per call in microseconds over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-setup", action="store_true", help="reuse kw_bench as it is")
    args = parser.parse_args()

    env = bench_env(DATABASE, REDIS_URL)
    if not args.no_setup:
        recreate_database(DATABASE)
        manage(env, "migrate", "--no-input")
    os.environ.update(env)

    import django

    django.setup()
    from django.core.cache import cache
    from django.test import RequestFactory
    from rest_framework.request import Request

    from apikeys import tokens
    from apikeys.authentication import APIKeyAuthentication
    from apikeys.cache import verified_keys
    from apikeys.services import api_key_create
    from apikeys.throttling import KeyRateThrottle
    from audit.actors import Actor
    from config.rates import parse_rate
    from orgs.models import Organization, User
    from orgs.services import organization_create

    cache.clear()  # Redis database 11: the benchmark's own
    organization = Organization.objects.filter(slug="floor").first()
    if organization is None:
        owner = User.objects.create_user(email="floor@bench.example", password=None)
        organization = organization_create(name="Floor", slug="floor", owner=owner)
    key, token = api_key_create(
        organization=organization, actor=Actor.system("floor"), name="floor", scopes=["keys:read"]
    )
    django_request = RequestFactory().get("/bench/keyward", HTTP_AUTHORIZATION=f"Bearer {token}")
    django_request.client_ip = "127.0.0.1"  # as RequestIdMiddleware sets it
    request = Request(django_request)
    auth = APIKeyAuthentication()

    def floor() -> None:
        parsed = tokens.parse(token)
        tokens.check_hash(parsed.token, key.secret_hash)

    def authenticate() -> None:
        auth.authenticate(request)

    def cold() -> None:
        verified_keys.clear()
        auth.authenticate(request)

    throttle = KeyRateThrottle()
    rate = parse_rate("100000000/h")

    def rate_decision() -> None:
        throttle.decide(key, rate, count=True)

    deadline = time.monotonic() + 10
    while not verified_keys.trusted() and time.monotonic() < deadline:
        time.sleep(0.01)  # the lease: until it is held the cache is not trusted

    def measure(fn, calls: int = args.calls) -> float:
        for _ in range(3):
            fn()  # warm: the process's cache, the connection, the Redis client
        return best_of(fn, calls, args.repeats)

    rows: list[tuple[str, float]] = []
    rows.append(("floor: parse + checksum + one HMAC", measure(floor)))
    rows.append(("authenticate(), warm: Redis configured, no round trip", measure(authenticate)))
    rows.append(("a limited key's rate decision (GCRA: one round trip)", measure(rate_decision)))
    rows.append(("authenticate(), cold: cache emptied, one query", measure(cold, args.calls // 5)))

    base = rows[0][1]
    width = max(len(name) for name, _ in rows)
    print(f"{'call':<{width}}  {'µs/call':>8}  {'× floor':>7}")
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:>8.1f}  {micros / base:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
