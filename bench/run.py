"""Throughput of one trivial DRF view behind each guard, side by side: `make bench`.

Starts gunicorn (one sync worker per core) against PostgreSQL (database
kw_bench, recreated) with Redis as the cache (redis://127.0.0.1:6379/11; both
can be moved, docs/harness.md), and
a second gunicorn without a pool and with CONN_MAX_AGE=0 (a fresh database
connection for every request that queries). Then wrk (8 connections, loopback
only) loads each guard in turn, round after round, so that drift hits every
guard alike. Prints requests/s, p50, p99, the ratio to the no-authentication
baseline, and database queries and writes per request.

Queries are counted inside the workers by bench.middleware (one execute
wrapper per request: every SQL statement the request causes, the guard's and
the view's), summed per path over the whole run and written out when gunicorn
stops. This counts statements, not transactions, and needs no DEBUG and no
pg_stat_statements.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import print_targets
from harness import Gunicorn, bench_env, database_name, manage, redis_url
from harness.environment import admin_url
from harness.postgres import recreate_database

DATABASE = database_name("bench")
REDIS_URL = redis_url("bench")
# gunicorn.conf.py as for any server; quieter, and keep-alive for wrk's connections.
GUNICORN_ARGS = ["--log-level", "warning", "--keep-alive", "5"]


@dataclass
class Guard:
    name: str
    server: str  # "pooled", "quiet" (key activity off) or "fresh"
    path: str
    credential: str | None  # key of the seed JSON, or None
    scheme: str = "Bearer"
    rounds: list[dict] = field(default_factory=list)


def guards(include_fresh: bool) -> list[Guard]:
    rows = [
        Guard("no authentication", "pooled", "/bench/none", None),
        Guard("Keyward, unlimited key", "pooled", "/bench/keyward", "unlimited"),
        Guard(
            "Keyward, org with a webhook on every event", "pooled", "/bench/keyward", "webhooked"
        ),
        Guard("Keyward, rate-limited key", "pooled", "/bench/keyward-limited", "limited"),
        # The same unlimited key on a server that gathers no key activity: the row above
        # against this one is what the activity costs.
        Guard("Keyward, unlimited key, activity off", "quiet", "/bench/keyward", "unlimited"),
        Guard("DRF TokenAuthentication", "pooled", "/bench/drf-token", "drf_token", "Token"),
        Guard(
            "djangorestframework-api-key", "pooled", "/bench/drf-api-key", "drf_api_key", "Api-Key"
        ),
    ]
    if include_fresh:
        rows += [
            Guard("Keyward, fresh connection", "fresh", "/bench/keyward", "unlimited"),
            Guard("DRF Token, fresh connection", "fresh", "/bench/drf-token", "drf_token", "Token"),
        ]
    return rows


LATENCY_RE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    header: str | None,
    seconds: float,
    connections: int,
    threads: int,
    hosts: Collection[str] = ("127.0.0.1",),
    prefix: Sequence[str] = (),
) -> dict:
    """Run wrk once against a local URL; return requests/s, p50 and p99 (ms), failures.

    `hosts` are the addresses the URL may name: loopback, or hosts of the benchmark's own
    (bench/hosts.py's network namespaces); `prefix` runs wrk through a command that
    execs it (`ip netns exec NAME`, to send from a namespace).
    """
    if not url.startswith("http://") or urlsplit(url).hostname not in hosts:
        raise ValueError(f"the benchmark sends traffic to {', '.join(hosts)} only")
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if header:
        command += ["-H", header]
    output = subprocess.run(
        [*prefix, *command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    latencies = {p: float(v) * UNITS[u] for p, v, u in LATENCY_RE.findall(output)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "rps": rps,
        "requests": requests,
        "p50": latencies["50"],
        "p99": latencies["99"],
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _backend_pids() -> list[int]:
    """Return the pids of the PostgreSQL backends connected to the bench database."""
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [DATABASE]
        ).fetchall()
    return [row[0] for row in rows]


def _redis_cpu() -> float:
    import redis

    info = redis.Redis.from_url(REDIS_URL).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class CpuMeter:
    """CPU seconds spent by a server's workers, its PostgreSQL backends and Redis.

    On a machine shared with other work, requests/s measures the scheduler as
    much as the code; CPU per request does not. Redis's figure is the whole
    server's (other users of it add noise); backends of fresh connections live
    too briefly to be read, so that column is left empty for those rows.
    """

    def __init__(self, server: Gunicorn) -> None:
        self.server = server

    def snapshot(self) -> tuple[float, float, float]:
        workers = sum(cpu_seconds(pid) for pid in self.server.worker_pids())
        backends = sum(cpu_seconds(pid) for pid in _backend_pids())
        return workers, backends, _redis_cpu()


def collect_counters(directory: Path) -> dict[str, list[int]]:
    totals: dict[str, list[int]] = {}
    for file in directory.glob("*.json"):
        for path, row in json.loads(file.read_text()).items():
            into = totals.setdefault(path, [0, 0, 0])
            for i, value in enumerate(row):
                into[i] += value
    return totals


def flush_bench_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # database 11 is the benchmark's own


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}"


def table(rows: list[Guard], counters: dict[str, dict[str, list[int]]]) -> str:
    base = rows[0]
    lines = [
        "| guard | × no-auth | CPU × no-auth | req/s | p50 ms | p99 ms | p99 added ms "
        "| queries/req | writes/req | worker CPU µs/req | PostgreSQL CPU µs/req "
        "| Redis CPU µs/req | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_p99 = statistics.median(r["p99"] for r in base.rounds)

    def cpu(guard: Guard, index: int) -> float:
        return statistics.median(r["cpu_us"][index] for r in guard.rounds)

    base_cpu = sum(cpu(base, i) for i in range(3))
    for guard in rows:
        fresh = guard.server == "fresh"
        total_cpu = sum(cpu(guard, i) for i in range(3))
        ratios = [
            mine["rps"] / theirs["rps"]
            for mine, theirs in zip(guard.rounds, base.rounds, strict=True)
        ]
        counted = counters[guard.server].get(guard.path, [0, 0, 0])
        requests = max(counted[0], 1)
        p99 = statistics.median(r["p99"] for r in guard.rounds)
        lines.append(
            f"| {guard.name} | {statistics.median(ratios):.2f} "
            f"| {'' if fresh else f'{base_cpu / total_cpu:.2f}'} "
            f"| {statistics.mean(r['rps'] for r in guard.rounds):,.0f} "
            f"| {statistics.median(r['p50'] for r in guard.rounds):.2f} "
            f"| {p99:.2f} | {p99 - base_p99:+.2f} "
            f"| {counted[1] / requests:.4f} | {counted[2] / requests:.4f} "
            f"| {cpu(guard, 0):.0f} | {'' if fresh else f'{cpu(guard, 1):.0f}'} "
            f"| {cpu(guard, 2):.0f} "
            f"| {sum(r['non_2xx'] + r['socket_errors'] for r in guard.rounds)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per guard and round")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-connection rows")
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    try:
        import rest_framework_api_key  # noqa: F401
    except ImportError:
        sys.exit("djangorestframework-api-key is missing: pip install -r requirements-bench.txt")

    rows = guards(include_fresh=not args.no_fresh)
    print(
        f"Machine: {machine()}; gunicorn {args.workers} sync workers per server; "
        f"wrk {args.connections} connections; {args.rounds} rounds × {args.seconds:g} s per guard.",
        flush=True,
    )
    recreate_database(DATABASE)
    flush_bench_redis()
    env = bench_env(DATABASE, REDIS_URL)
    manage(env, "migrate", "--no-input")
    seed = json.loads(manage(env, "benchseed"))

    stats_root = Path(tempfile.mkdtemp(prefix="kw-bench-"))
    servers: dict[str, Gunicorn] = {}
    try:
        kinds = (
            ("pooled", {}),
            ("quiet", {"KEYWARD_KEY_ACTIVITY": "0"}),
            ("fresh", {"DATABASE_POOL": "0", "CONN_MAX_AGE": "0"}),
        )
        for name, extra in kinds:
            if name == "fresh" and args.no_fresh:
                continue
            (stats_root / name).mkdir()
            server_env = {**env, "BENCH_STATS_DIR": str(stats_root / name), **extra}
            servers[name] = Gunicorn(
                server_env, workers=args.workers, graceful_timeout=10, extra_args=GUNICORN_ARGS
            )
            servers[name].start()

        def load(guard: Guard, seconds: float) -> dict:
            header = None
            if guard.credential:
                header = f"Authorization: {guard.scheme} {_credential(seed, guard.credential)}"
            url = servers[guard.server].url + guard.path
            meter = CpuMeter(servers[guard.server])
            before = meter.snapshot()
            figures = run_wrk(url, header, seconds, args.connections, min(2, args.connections))
            after = meter.snapshot()
            requests = max(figures["requests"], 1)
            figures["cpu_us"] = [
                (a - b) * 1e6 / requests for a, b in zip(after, before, strict=True)
            ]
            return figures

        for guard in rows:  # warm every worker's caches and connections; not counted
            load(guard, 1)
        for round_number in range(args.rounds):
            # Rotate the order each round so that no guard always runs first or last.
            shift = round_number % len(rows)
            for guard in rows[shift:] + rows[:shift]:
                guard.rounds.append(load(guard, args.seconds))
            print(f"  round {round_number + 1}/{args.rounds} done", flush=True)
    finally:
        for server in servers.values():
            server.stop()  # workers write their counters as they exit; checked
    counters = {name: collect_counters(stats_root / name) for name in servers}
    shutil.rmtree(stats_root, ignore_errors=True)

    print()
    print(table(rows, counters))
    print()
    print("× no-auth: median over rounds of (guard req/s ÷ no-auth req/s in the same round).")
    print(
        "CPU × no-auth: no-auth CPU per request ÷ this guard's (workers + PostgreSQL + Redis):\n"
        "  the throughput ratio a machine with nothing else to run would approach (wrk's own\n"
        "  CPU, the same for every guard, left out). CPU figures are medians over rounds."
    )
    print(
        "queries/req and writes/req: SQL statements per request over the whole run, "
        "warm-up included."
    )
    print()
    print_targets({g.name: g.rounds for g in rows})
    if args.json:
        args.json.write_text(json.dumps({g.name: g.rounds for g in rows}, indent=2))
    return 0


def _credential(seed: dict, name: str) -> str:
    value = seed[name]
    return value["token"] if isinstance(value, dict) else value


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"Finished in {time.monotonic() - started:.0f} s.")
    sys.exit(code)
