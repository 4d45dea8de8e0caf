"""Does an unknown key id answer as fast as a known id with a wrong secret?

If one is measurably slower, anyone can confirm which key ids exist by timing
401s. This measures both in-process against PostgreSQL and Redis (the production
configuration): the whole request through Django's stack to `/api/v1/whoami`, and
`APIKeyAuthentication.authenticate()` alone. Samples of the two kinds are
interleaved in random order, each kind from many distinct tokens, so that load on
the machine falls on both alike; it prints the medians, quartiles, and the median
of the paired differences. Nothing is asserted: read the figures.

    python bench/key_id_timing.py --database kw_timing --redis redis://127.0.0.1:6379/11
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def quartiles(samples: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(samples, n=4)
    return q1, median, q3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="kw_timing", help="recreated; PostgreSQL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11", help="flushed")
    parser.add_argument("--samples", type=int, default=4000, help="per kind and measure")
    parser.add_argument("--keys", type=int, default=200, help="distinct known keys")
    args = parser.parse_args()

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
        "REDIS_URL": args.redis,
        "KEYWARD_USAGE_FLUSH_SECONDS": "0",
    }
    admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c"]
    subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{args.database}"'], check=True)
    subprocess.run([*admin, f'CREATE DATABASE "{args.database}"'], check=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True)
    os.environ.update(env)

    import django

    django.setup()
    import logging

    logging.getLogger("django.request").setLevel(logging.ERROR)  # one line per 401 otherwise
    from django.core.cache import cache
    from django.test import Client, RequestFactory
    from rest_framework.request import Request

    from apikeys import tokens
    from apikeys.authentication import APIKeyAuthentication, APIKeyRejected
    from apikeys.services import api_key_create
    from audit.actors import Actor
    from orgs.models import User
    from orgs.services import organization_create

    cache.clear()
    owner = User.objects.create_user(email="timing@bench.example", password=None)
    organization = organization_create(name="Timing", slug="timing", owner=owner)
    system = Actor.system("timing")
    known = []
    for n in range(args.keys):
        key, token = api_key_create(
            organization=organization, actor=system, name=f"k{n}", scopes=["keys:read"]
        )
        wrong = tokens.generate(key.environment, key_id=key.id).token  # same id, other secret
        known.append(wrong)
    unknown = [tokens.generate("live").token for _ in range(args.keys)]

    rng = random.Random(12)
    client = Client()
    auth = APIKeyAuthentication()
    factory = RequestFactory()

    def address() -> str:
        # a fresh address each time: the invalid-key guard (429) never engages
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def whole_request(token: str) -> float:
        started = time.perf_counter()
        response = client.get(
            "/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address()
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 401, response.status_code
        return elapsed

    def authenticate_only(token: str) -> float:
        django_request = factory.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
        django_request.client_ip = address()
        request = Request(django_request)
        started = time.perf_counter()
        with contextlib.suppress(APIKeyRejected):  # the refusal is what is timed
            auth.authenticate(request)
        return time.perf_counter() - started

    print(f"{args.samples} samples of each kind per measure, interleaved; times in ms")
    print(f"{'measure':<22} {'kind':<26} {'q1':>7} {'median':>7} {'q3':>7}")
    for name, measure in (
        ("whole request", whole_request),
        ("authenticate() alone", authenticate_only),
    ):
        for token in known[:20] + unknown[:20]:
            measure(token)  # warm: connections, the process's caches
        times: dict[str, list[float]] = {"known id, wrong secret": [], "unknown id": []}
        differences = []
        for i in range(args.samples):
            pair = [
                ("known id, wrong secret", known[i % len(known)]),
                ("unknown id", unknown[i % len(unknown)]),
            ]
            rng.shuffle(pair)
            taken = {kind: measure(token) * 1000 for kind, token in pair}
            for kind, ms in taken.items():
                times[kind].append(ms)
            differences.append(taken["unknown id"] - taken["known id, wrong secret"])
        for kind, samples in times.items():
            q1, median, q3 = quartiles(samples)
            print(f"{name:<22} {kind:<26} {q1:>7.3f} {median:>7.3f} {q3:>7.3f}")
        print(
            f"{name:<22} {'unknown − known (paired)':<26} {'':>7} "
            f"{statistics.median(differences):>7.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
