"""A warm request in-process, timed and profiled: `make bench-profile`.

Calls the WSGI application itself (no socket, no gunicorn) with the same
`{"ok": true}` DRF view behind no authentication and behind Keyward, many times
in a row, and prints the time per request of each and their difference: what
Keyward adds inside the process, round trips aside. Then it profiles the Keyward
request with pyinstrument (requirements-bench.txt) and prints the call tree.

Runs against PostgreSQL (kw_bench, recreated) and Redis
(redis://127.0.0.1:6379/11), the production configuration: with leases, a warm
request of a key without a limit touches neither.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import bench_env, database_name, manage, redis_url
from harness.postgres import recreate_database

DATABASE = database_name("bench")
REDIS_URL = redis_url("bench")


def environ(path: str, authorization: str | None) -> dict:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    if authorization:
        env["HTTP_AUTHORIZATION"] = authorization
    return env


SEED_FILE = Path(tempfile.gettempdir(), f"{DATABASE}-profile-seed.json")


def prepare(env: dict[str, str], setup: bool) -> dict:
    """Recreate and seed the bench database (unless `setup` is off and a seed is kept); the seed.

    `make bench` recreates the same database with seeds of its own: after it, a run
    without setup finds its keys gone, and `serve` says so.
    """
    if setup or not SEED_FILE.exists():
        import redis

        recreate_database(DATABASE)
        redis.Redis.from_url(REDIS_URL).flushdb()  # the benchmark's own database
        manage(env, "migrate", "--no-input")
        SEED_FILE.write_text(manage(env, "benchseed"))
    return json.loads(SEED_FILE.read_text())


def serve(application: Any, path: str, authorization: str | None) -> None:
    """Serve one GET through the WSGI application, in this process; raise unless it is a 200."""
    statuses: list[str] = []
    body = application(environ(path, authorization), lambda s, h: statuses.append(s))
    for _ in body:
        pass
    body.close()
    if statuses[0].startswith("401"):
        raise RuntimeError(
            f"{path} answered {statuses[0]}: the kept seed's keys are gone (another benchmark "
            "recreated the database); run without --no-setup"
        )
    if not statuses[0].startswith("200"):
        raise RuntimeError(f"{path} answered {statuses[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-setup", action="store_true", help="reuse the database as it is")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    env = bench_env(DATABASE, REDIS_URL, BENCH_PEERS="0")
    seed = prepare(env, setup=not args.no_setup)
    os.environ.update(env)

    from apikeys.cache import verified_keys
    from config.wsgi import application

    def call(path: str, authorization: str | None) -> None:
        serve(application, path, authorization)

    guards = {
        "no authentication": ("/bench/none", None),
        "Keyward, unlimited key": ("/bench/keyward", f"Bearer {seed['unlimited']['token']}"),
        "Keyward, rate-limited key": (
            "/bench/keyward-limited",
            f"Bearer {seed['limited']['token']}",
        ),
    }
    deadline = time.monotonic() + 10
    while not verified_keys.trusted() and time.monotonic() < deadline:
        time.sleep(0.01)
    for path, authorization in guards.values():
        for _ in range(200):
            call(path, authorization)  # warm: caches, connections, the lease

    best: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved, so that drift hits every guard alike
        for name, (path, authorization) in guards.items():
            started = time.perf_counter()
            for _ in range(args.calls):
                call(path, authorization)
            elapsed = (time.perf_counter() - started) / args.calls * 1e6
            best[name] = min(best.get(name, float("inf")), elapsed)
    base = best["no authentication"]
    print(
        f"{'request, in-process (best of ' + str(args.repeats) + ')':<44} {'µs':>8} {'added µs':>9}"
    )
    for name, micros in best.items():
        print(f"{name:<44} {micros:>8.1f} {micros - base:>+9.1f}")

    if not args.no_profile:
        from pyinstrument import Profiler

        path, authorization = guards["Keyward, unlimited key"]
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(args.calls):
            call(path, authorization)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
