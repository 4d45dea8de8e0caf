"""How long a revoke takes, every worker live and one frozen: `make bench-revoke`.

Starts gunicorn (four sync workers) on PostgreSQL and Redis, then, round after
round: creates a key, makes every worker answer it from its cache, revokes it
through the API (timing the call: publish, every live worker's acknowledgement,
commit to response), and asks every worker until each has answered three
times: every answer must refuse (a stale 200 is counted and fails the run).
The second series freezes one worker (SIGSTOP) just before each revoke, so the
revoke waits for that worker's lease to run out, then wakes it and checks that
it refuses too. docs/architecture-invalidation.md explains both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import http.client

from harness import Gunicorn, bench_env, database_name, manage, redis_url
from harness.postgres import recreate_database


def request(
    port: int,
    method: str,
    path: str,
    token: str,
    body: dict | None = None,
    host: str = "127.0.0.1",
):
    """Send one request on a new connection; return status, worker pid, queries, JSON body."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body or {}), headers=headers)
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
        return (
            response.status,
            response.getheader("X-Keyward-Worker"),
            int(response.getheader("X-Bench-Queries") or -1),
            payload,
        )
    finally:
        conn.close()


def ask(
    port: int,
    token: str,
    done,
    pool: ThreadPoolExecutor,
    deadline: float = 60,
    host: str = "127.0.0.1",
) -> dict[str, list[tuple[int, int]]]:
    """Ask /bench/keyward with `token`, 8 new connections at a time, until `done(answers)`.

    Returns worker pid → [(status, queries), …].
    """
    answers: dict[str, list[tuple[int, int]]] = defaultdict(list)
    give_up = time.monotonic() + deadline
    while not done(answers):
        if time.monotonic() > give_up:
            raise RuntimeError(f"workers reached: {sorted(answers)}")
        for status, pid, queries, _ in pool.map(
            lambda _: request(port, "GET", "/bench/keyward", token, host=host), range(8)
        ):
            answers[pid].append((status, queries))
    return answers


def cached_everywhere(answers: dict[str, list[tuple[int, int]]], expected: int) -> bool:
    """Whether `expected` workers have each answered at least once from cache (no query)."""
    return sum(1 for rows in answers.values() if any(q == 0 for _, q in rows)) >= expected


def answered_thrice(answers: dict[str, list[tuple[int, int]]], workers: int) -> bool:
    """Whether each of `workers` workers has answered at least three times."""
    return len(answers) == workers and all(len(rows) >= 3 for rows in answers.values())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def publish_alone(env: dict[str, str], args, warm) -> list[float]:
    """Time publish_and_wait alone from this process, with every worker holding a lease."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.cache import caches

    from apikeys.leases import Bus, Publisher

    warm()  # every worker trusts its cache, so every one holds a lease
    publisher = Publisher(Bus(caches["default"]))
    times = []
    for n in range(args.rounds * 5):
        times.append(publisher.publish_and_wait(10_000_000 + n, lease=args.lease) * 1000)
        time.sleep(0.02)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="revokes with every worker live")
    parser.add_argument("--frozen-rounds", type=int, default=15, help="revokes with one frozen")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--lease", type=float, default=2.0, help="KEYWARD_LEASE_SECONDS")
    parser.add_argument("--database", default=database_name("bench"))
    parser.add_argument("--redis-url", default=redis_url("bench"))
    args = parser.parse_args()

    import redis

    recreate_database(args.database)
    redis.Redis.from_url(args.redis_url).flushdb()  # the benchmark's own database
    env = bench_env(
        args.database, args.redis_url, KEYWARD_LEASE_SECONDS=str(args.lease), BENCH_PEERS="0"
    )
    manage(env, "migrate", "--no-input")
    seed = json.loads(manage(env, "benchseed"))
    manager = seed["manager"]["token"]
    server = Gunicorn(env, workers=args.workers, extra_args=["--log-level", "warning"])
    live: list[float] = []
    frozen: list[float] = []
    stale = 0
    try:
        server.start()
        port = server.port
        workers = args.workers

        def thrice(answers) -> bool:
            return answered_thrice(answers, workers)

        with ThreadPoolExecutor(8) as pool:
            ask(port, seed["unlimited"]["token"], lambda a: cached_everywhere(a, workers), pool)
            time.sleep(args.lease)  # a registry younger than a lease makes a change wait it out
            for series, rounds in (("live", args.rounds), ("frozen", args.frozen_rounds)):
                for _ in range(rounds):
                    status, _, _, body = request(
                        port, "POST", "/api/v1/keys", manager, {"name": "r"}
                    )
                    if status != 201:
                        raise RuntimeError(f"could not create a key: {status} {body}")
                    key_id, token = body["key"]["id"], body["token"]
                    ask(port, token, lambda a: cached_everywhere(a, workers), pool)
                    victim = sorted(server.worker_pids())[0] if series == "frozen" else None
                    if victim is not None:
                        os.kill(victim, signal.SIGSTOP)
                    started = time.monotonic()
                    try:
                        status, _, _, _ = request(
                            port, "POST", f"/api/v1/keys/{key_id}/revoke", manager
                        )
                    finally:
                        took = time.monotonic() - started
                        if victim is not None:
                            os.kill(victim, signal.SIGCONT)
                    if status != 200:
                        raise RuntimeError(f"revoke answered {status}")
                    (live if series == "live" else frozen).append(took * 1000)
                    answers = ask(port, token, thrice, pool)
                    stale += sum(1 for rows in answers.values() for s, _ in rows if s == 200)
                    time.sleep(1.0)  # let the invalid-key tally of this address fade a little
                print(f"  {series}: {rounds} revokes done", flush=True)
            published = publish_alone(
                env,
                args,
                lambda: ask(
                    port, seed["unlimited"]["token"], lambda a: cached_everywhere(a, workers), pool
                ),
            )
    finally:
        server.stop()

    print()
    print(f"Revoke latency, {args.workers} workers, lease {args.lease:g} s (ms, through the API):")
    print("| workers | revokes | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    rows = (
        (f"{args.workers} live", live),
        ("one of them frozen (SIGSTOP)", frozen),
        (f"{args.workers} live: publish + acknowledgements alone", published),
    )
    for name, values in rows:
        if values:
            print(
                f"| {name} | {len(values)} | {statistics.median(values):.1f} "
                f"| {percentile(values, 0.99):.1f} | {max(values):.1f} |"
            )
    print(f"Stale 200s after a revoke's response, in all rounds: {stale}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
