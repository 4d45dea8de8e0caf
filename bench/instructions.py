"""Instructions per warm request, counted by valgrind: `make bench-instructions`.

Wall-clock and CPU-time ratios move by ±0.05 between runs on a shared or
throttled virtual machine; the number of instructions a request executes does
not. This runs the same in-process requests as bench/profile.py (the WSGI
application called directly, `{"ok": true}` behind each guard) under
`valgrind --tool=callgrind`, counts the instructions of the thread that serves
them, guard by guard, and prints each guard's count and its ratio to no
authentication in the same run. Instructions are not time (a cache miss costs
more than an add), but the ratio is the throughput ratio of a core that does
nothing else, and it is repeatable to a fraction of a percent.

Runs against PostgreSQL (kw_bench, recreated unless --no-setup) and Redis
(redis://127.0.0.1:6379/11), as `make bench` does. Under valgrind a process runs
about fifty times slower, so the lease is set to ten minutes: with the usual two
seconds its renewal thread falls behind, the process stops trusting its cache,
and every request would read the database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.profile import SEED_FILE, prepare
from harness import bench_env, database_name, redis_url

DATABASE = database_name("bench")
REDIS_URL = redis_url("bench")
GUARDS = {
    "no authentication": ("/bench/none", None),
    "Keyward, unlimited key": ("/bench/keyward", "unlimited"),
    "Keyward, rate-limited key": ("/bench/keyward-limited", "limited"),
}
LEASE_SECONDS = "600"


def serve(requests: int, rounds: int) -> None:
    """The child under valgrind: serve each guard's requests, one counted dump per guard."""
    from bench.profile import serve as serve_one

    seed = json.loads(SEED_FILE.read_text())
    from apikeys.cache import verified_keys
    from config.wsgi import application

    def call(path: str, authorization: str | None) -> None:
        serve_one(application, path, authorization)

    guards = {
        name: (path, f"Bearer {seed[credential]['token']}" if credential else None)
        for name, (path, credential) in GUARDS.items()
    }
    deadline = time.monotonic() + 120
    while not verified_keys.trusted() and time.monotonic() < deadline:
        time.sleep(0.05)
    for path, authorization in guards.values():
        for _ in range(30):
            call(path, authorization)  # warm: caches, connections, slices

    def control(*args: str) -> None:
        done = subprocess.run(
            ["callgrind_control", *args, str(os.getpid())], capture_output=True, text=True
        )
        if done.returncode != 0 or "OK." not in done.stdout:  # it exits 0 on some failures
            raise RuntimeError(f"callgrind_control {args}: {done.stdout} {done.stderr}")

    control("-i", "on")
    for number in range(rounds):
        for index, (path, authorization) in enumerate(guards.values()):
            for _ in range(5):
                call(path, authorization)
            control("-z")
            for _ in range(requests):
                call(path, authorization)
            control(f"--dump=round{number}-guard{index}")
    control("-i", "off")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="per guard and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-setup", action="store_true", help="reuse the database as it is")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    env = bench_env(DATABASE, REDIS_URL, BENCH_PEERS="0", KEYWARD_LEASE_SECONDS=LEASE_SECONDS)
    if args.child:
        os.environ.update(env)
        serve(args.requests, args.rounds)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is missing: apt-get install -y valgrind")
    prepare(env, setup=not args.no_setup)

    with tempfile.TemporaryDirectory(prefix="kw-callgrind-") as directory:
        output = Path(directory, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",  # background threads (lease, counters) are counted apart
            "--instr-atstart=no",
            f"--callgrind-out-file={output}",
            sys.executable,
            __file__,
            "--child",
            "--requests",
            str(args.requests),
            "--rounds",
            str(args.rounds),
        ]
        child = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
        if child.returncode != 0:
            sys.exit(f"the counted run failed:\n{child.stderr[-3000:]}")
        counts = read_dumps(Path(directory), args.requests)

    names = list(GUARDS)
    base = min(counts[names[0]])
    print(
        f"Instructions per warm request, in-process, main thread "
        f"({args.rounds} rounds × {args.requests} requests per guard; callgrind)"
    )
    print("| guard | instructions per request | × no-auth | added |")
    print("|---|---:|---:|---:|")
    for name in names:
        mine = min(counts[name])
        print(f"| {name} | {mine:,.0f} | {base / mine:.3f} | {mine - base:+,.0f} |")
    spread = max(max(v) / min(v) - 1 for v in counts.values())
    print(f"Largest spread between rounds of one guard: {spread:.2%}.")
    return 0


def read_dumps(directory: Path, requests: int) -> dict[str, list[float]]:
    """Return each guard's instructions per request, one figure per round (main thread)."""
    names = list(GUARDS)
    counts: dict[str, list[float]] = {name: [] for name in names}
    for dump in sorted(directory.glob("callgrind.out.*-01")):  # thread 1: the main thread
        text = dump.read_text(errors="replace")
        trigger = next((line for line in text.splitlines() if line.startswith("desc: Trigger")), "")
        label = trigger.rsplit(" ", 1)[-1]
        if "-guard" not in label:
            continue  # the program's own end, not a guard's dump
        index = label.rsplit("-guard", 1)[1]
        summary = next(line for line in text.splitlines() if line.startswith("summary:"))
        counts[names[int(index)]].append(int(summary.split()[1]) / requests)
    if any(not values for values in counts.values()):
        raise RuntimeError(
            f"a guard's dump is missing: {sorted(p.name for p in directory.iterdir())}"
        )
    return counts


if __name__ == "__main__":
    sys.exit(main())
