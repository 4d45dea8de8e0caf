"""Two app hosts on one PostgreSQL and one Redis, in network namespaces: `make bench-hosts`.

Makes two network namespaces (hosts a and b, 10.201.0.2 and .3) joined by a bridge
here (10.201.0.1), where a throwaway PostgreSQL and a throwaway Redis listen; each
host runs gunicorn (two sync workers) on bench.settings. Then, from here:

1. revoke: round after round, a new key answered from cache by every worker of both
   hosts is revoked through the API on one host (alternating), and the other host is
   asked at once, on new connections, until each of its workers answered three times:
   a 200 is a stale answer, and fails the run;
2. one rate budget: a key limited to 10/min, then one to 600/min (served from slices),
   asked from both hosts at once: how many 200s in all, against the documented bound
   (docs/README-usage.md): N + ⌊t·N/period⌋ in any t seconds, N + ⌊(t + 0.5 s)·N/period⌋
   for a sliced key; more than the bound fails the run;
3. throughput: wrk, from a third namespace (w, 10.201.0.4), against host a alone, b
   alone, and both at once, on the no-auth view and on Keyward's with an unlimited key.

Where network namespaces cannot be made (not root, no `ip`, a refusal by the kernel)
it prints one line, "skipped: …", and exits 0. The namespaces, veths and bridge are
deleted at the end, on an error or a Ctrl-C too (harness.netns).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.revoke import answered_thrice, ask, cached_everywhere, request
from bench.run import cpu_seconds, machine, run_wrk
from config.rates import parse_rate
from harness import (
    Gunicorn,
    HostNetwork,
    NamespaceUnavailable,
    ThrowawayPostgres,
    ThrowawayRedis,
    bench_env,
    manage,
    netns,
)
from harness.netns import DEFAULT_SUBNET

HOSTS = ("a", "b")
# wrk sends from a namespace of its own, which reuses its TIME_WAIT ports at once
# (tcp_tw_reuse=1, for this namespace only): gunicorn's sync workers close every
# connection, and thousands a second through the bridge would otherwise use up the
# 28,000 local ports within seconds, after which every connect waits (loopback is
# spared by the kernel's default, tcp_tw_reuse=2).
CLIENT = "w"
Answers = dict[str, list[tuple[int, int]]]  # worker pid → [(status, queries), …]
GUNICORN_ARGS = ["--log-level", "warning"]
SLICE_LIFETIME = 0.5  # apikeys.throttling.RateSlices.lifetime, documented in README-usage.md
VIEWS = {
    "no authentication": ("/bench/none", None),
    "Keyward, unlimited key": ("/bench/keyward", "unlimited"),
}


class Host:
    """One app host: its name, address and gunicorn."""

    def __init__(self, name: str, address: str, server: Gunicorn) -> None:
        self.name, self.address, self.server = name, address, server

    def call(self, method: str, path: str, token: str, body: dict | None = None) -> tuple:
        return request(self.server.port, method, path, token, body, host=self.address)

    def ask(self, token: str, done: Callable[[Answers], bool], pool: ThreadPoolExecutor) -> Answers:
        return ask(self.server.port, token, done, pool, host=self.address)

    def warm(self, token: str, pool: ThreadPoolExecutor) -> None:
        """Ask until every worker has answered `token` from its cache."""
        workers = self.server.workers
        self.ask(token, lambda answers: cached_everywhere(answers, workers), pool)

    def ask_thrice(self, token: str, pool: ThreadPoolExecutor) -> Answers:
        """Ask until every worker has answered `token` three times; return the answers."""
        workers = self.server.workers
        return self.ask(token, lambda answers: answered_thrice(answers, workers), pool)

    def worker_cpu(self) -> float:
        """CPU seconds (user + system) spent so far by this host's gunicorn workers."""
        return sum(cpu_seconds(pid) for pid in self.server.worker_pids())

    def create_key(self, manager: str, **fields: Any) -> tuple[str, str]:
        status, _, _, body = self.call(
            "POST", "/api/v1/keys", manager, {"name": "hosts", "scopes": ["keys:read"], **fields}
        )
        if status != 201:
            raise RuntimeError(f"host {self.name} could not create a key: {status} {body}")
        return body["key"]["id"], body["token"]


def revocations(hosts: list[Host], manager: str, rounds: int, pool: ThreadPoolExecutor) -> dict:
    """Revoke on one host, ask the other at once; return the revoke times and the answers."""
    times: list[float] = []
    statuses: Counter[int] = Counter()
    for number in range(rounds):
        revoker, other = hosts[number % 2], hosts[1 - number % 2]
        key_id, token = revoker.create_key(manager)
        for host in hosts:
            host.warm(token, pool)
        started = time.monotonic()
        status, _, _, body = revoker.call("POST", f"/api/v1/keys/{key_id}/revoke", manager)
        times.append((time.monotonic() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"revoke on host {revoker.name} answered {status}: {body}")
        answers = other.ask_thrice(token, pool)
        if set(answers) != {str(pid) for pid in other.server.worker_pids()}:
            raise RuntimeError(f"host {other.name}: answers from {sorted(answers)}")
        statuses.update(status for rows in answers.values() for status, _ in rows)
    return {
        "rounds": rounds,
        "revoke_ms": times,
        "statuses_after": dict(statuses),
        "stale": statuses[200],
        "unexpected": sum(n for status, n in statuses.items() if status not in (200, 401, 429)),
    }


def spread(
    hosts: list[Host], token: str, threads: int, seconds: float | None, total: int = 0
) -> tuple[dict[str, Counter[int]], float]:
    """Ask from both hosts at once, half the threads each: `total` requests, or for `seconds`.

    Returns (statuses per host, seconds from the first request sent to the last answer).
    """
    statuses: dict[str, Counter[int]] = {host.name: Counter() for host in hosts}
    lock = threading.Lock()
    sent = iter(range(total)) if total else None
    deadline = time.monotonic() + (seconds or 0)

    def client(index: int) -> None:
        host = hosts[index % len(hosts)]
        while True:
            with lock:
                if sent is not None and next(sent, None) is None:
                    return
            if sent is None and time.monotonic() >= deadline:
                return
            status = host.call("GET", "/bench/keyward", token)[0]
            with lock:
                statuses[host.name][status] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(client, range(threads)))
    return statuses, time.monotonic() - started


def budget(hosts: list[Host], manager: str, rate: str, **how: Any) -> dict:
    """A new key limited to `rate`, asked from both hosts: 200s against the documented bound."""
    parsed = parse_rate(rate)
    limit, period = parsed.limit, parsed.period
    _, token = hosts[0].create_key(manager, rate_limit=rate)
    statuses, span = spread(hosts, token, **how)
    allowed = sum(counts[200] for counts in statuses.values())
    sliced = period >= 60 and limit * SLICE_LIFETIME / period >= 2  # RateSlices.eligible
    gcra_bound = limit + math.floor(span * limit / period)
    bound = limit + math.floor((span + SLICE_LIFETIME) * limit / period) if sliced else gcra_bound
    return {
        "rate": rate,
        "sliced": sliced,
        "seconds": span,
        "requests": sum(sum(counts.values()) for counts in statuses.values()),
        "allowed": allowed,
        "allowed_per_host": {name: counts[200] for name, counts in statuses.items()},
        "refused_429": sum(counts[429] for counts in statuses.values()),
        "other": sum(
            n for counts in statuses.values() for s, n in counts.items() if s not in (200, 429)
        ),
        "gcra_bound": gcra_bound,
        "bound": bound,
    }


def throughput(hosts: list[Host], seed: dict, args: argparse.Namespace, client: list[str]) -> dict:
    """wrk (run through `client`) against each host alone and both at once, per view."""
    addresses = [host.address for host in hosts]
    scenarios = [[host] for host in hosts] + [hosts]

    def load(group: list[Host], view: str, seconds: float) -> dict[str, dict]:
        path, credential = VIEWS[view]
        header = f"Authorization: Bearer {seed[credential]['token']}" if credential else None
        before = {host.name: host.worker_cpu() for host in group}
        with ThreadPoolExecutor(len(group)) as pool:
            runs = {
                host.name: pool.submit(
                    run_wrk,
                    host.server.url + path,
                    header,
                    seconds,
                    args.connections,
                    min(2, args.connections),
                    addresses,
                    client,
                )
                for host in group
            }
        figures = {name: run.result() for name, run in runs.items()}
        for host in group:
            spent = host.worker_cpu() - before[host.name]
            figures[host.name]["cpu_us"] = spent * 1e6 / max(figures[host.name]["requests"], 1)
        return figures

    rounds: dict[str, dict[str, list]] = {
        view: {"+".join(h.name for h in group): [] for group in scenarios} for view in VIEWS
    }
    for view in VIEWS:  # warm every worker's caches and connections; not counted
        load(hosts, view, 1)
    for number in range(args.wrk_rounds):
        shift = number % len(scenarios)
        for view in VIEWS:
            for group in scenarios[shift:] + scenarios[:shift]:
                rounds[view]["+".join(h.name for h in group)].append(
                    load(group, view, args.seconds)
                )
        print(f"  throughput round {number + 1}/{args.wrk_rounds} done", flush=True)
    return rounds


def cpu_pressure() -> str:
    """Return the machine's CPU pressure ("some", 60 s average, %): other work competing."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"
    return dict(field.split("=") for field in line.split()[1:]).get("avg60", "unknown")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="revokes (hosts alternate)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per host")
    parser.add_argument("--lease", type=float, default=2.0, help="KEYWARD_LEASE_SECONDS")
    parser.add_argument("--slow-rate", default="10/min", help="the exact (unsliced) limit")
    parser.add_argument("--slow-requests", type=int, default=40)
    parser.add_argument("--fast-rate", default="600/min", help="a limit served from slices")
    parser.add_argument("--fast-seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8, help="client threads, half per host")
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--wrk-rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per host")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    reason = netns.unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    for sig in (signal.SIGTERM, signal.SIGHUP):  # leave through the finally blocks below
        signal.signal(sig, lambda number, _: sys.exit(128 + number))

    started_at, began, pressure_before = datetime.now(UTC), time.monotonic(), cpu_pressure()
    print(
        f"Machine: {machine()}, shared by both hosts, PostgreSQL, Redis and wrk; "
        f"{args.workers} sync workers per host; lease {args.lease:g} s.",
        flush=True,
    )
    with ExitStack() as stack:
        try:
            network = stack.enter_context(HostNetwork((*HOSTS, CLIENT), subnet=args.subnet))
            netns.ip(
                "netns",
                "exec",
                network.namespace(CLIENT),
                "sysctl",
                "-qw",
                "net.ipv4.tcp_tw_reuse=1",
            )
        except NamespaceUnavailable as error:
            print(f"skipped: network namespaces cannot be made here: {error}")
            return 0
        gateway = network.gateway
        cluster = stack.enter_context(
            ThrowawayPostgres(host=gateway, clients=[str(network.subnet)])
        )
        redis = stack.enter_context(ThrowawayRedis(host=gateway))
        env = bench_env(
            cluster.database,
            redis.url,
            server_url=cluster.url,
            KEYWARD_LEASE_SECONDS=f"{args.lease:g}",
            BENCH_PEERS="0",
            ALLOWED_HOSTS=",".join(network.address(name) for name in HOSTS),
        )
        manage(env, "migrate", "--no-input")
        seed = json.loads(manage(env, "benchseed"))
        manager = seed["manager"]["token"]
        hosts = []
        for name in HOSTS:
            server = Gunicorn(
                env,
                workers=args.workers,
                host=network.address(name),
                command_prefix=network.prefix(name),
                graceful_timeout=10,
                extra_args=GUNICORN_ARGS,
            )
            stack.enter_context(server)  # started; stopped (checked) before the network goes
            hosts.append(Host(name, network.address(name), server))
        print(
            "Hosts: "
            + ", ".join(
                f"{h.name} {h.server.url} (workers {sorted(h.server.worker_pids())})" for h in hosts
            )
            + f"; PostgreSQL {gateway}:{cluster.port}, Redis {gateway}:{redis.port}",
            flush=True,
        )
        with ThreadPoolExecutor(8) as pool:
            for host in hosts:
                host.warm(seed["unlimited"]["token"], pool)
            time.sleep(args.lease)  # a registry younger than a lease makes a change wait it out
            revoked = revocations(hosts, manager, args.rounds, pool)
        print(f"  {args.rounds} revokes done", flush=True)
        slow = budget(
            hosts,
            manager,
            args.slow_rate,
            threads=args.threads,
            seconds=None,
            total=args.slow_requests,
        )
        fast = budget(
            hosts, manager, args.fast_rate, threads=args.threads, seconds=args.fast_seconds
        )
        print("  rate budgets done", flush=True)
        rates = throughput(hosts, seed, args, network.prefix(CLIENT))

    results = {
        "started": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "workers_per_host": args.workers,
        "lease": args.lease,
        "revoke": revoked,
        "budget": [slow, fast],
        "throughput": rates,
    }
    results["cpu_pressure"] = {"before": pressure_before, "after": cpu_pressure()}
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"Finished in {time.monotonic() - began:.0f} s.")
    failed = (
        revoked["stale"]
        or revoked["unexpected"]
        or any(row["allowed"] > row["bound"] or row["other"] for row in (slow, fast))
    )
    if failed:
        print("FAILED: a stale answer, an unexpected status, or more 200s than the bound.")
    return 1 if failed else 0


def report(results: dict, args: argparse.Namespace) -> None:
    revoked = results["revoke"]
    times = revoked["revoke_ms"]
    print()
    print(
        f"Two hosts, {args.workers} sync workers each; started {results['started']}; "
        f"CPU pressure (some, avg60) {results['cpu_pressure']['before']} % before, "
        f"{results['cpu_pressure']['after']} % after"
    )
    print()
    print("| revoke on one host, next requests on the other | |")
    print("|---|---:|")
    print(f"| revokes (hosts alternating) | {len(times)} |")
    print(f"| revoke call p50 / max, ms | {statistics.median(times):.1f} / {max(times):.1f} |")
    answers = ", ".join(f"{status}: {n}" for status, n in sorted(revoked["statuses_after"].items()))
    print(f"| answers of the other host after the revoke | {answers} |")
    print(f"| stale answers (200 after the revoke) | **{revoked['stale']}** |")
    print()
    print("| one rate budget | requests | seconds | 200s (a + b) | limit N | bound | 429s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in results["budget"]:
        per_host = " + ".join(str(n) for n in row["allowed_per_host"].values())
        how = "sliced: N + ⌊(t + 0.5)·N/P⌋" if row["sliced"] else "exact: N + ⌊t·N/P⌋"
        print(
            f"| {row['rate']} ({how}) | {row['requests']} | {row['seconds']:.2f} "
            f"| {row['allowed']} ({per_host}) | {row['rate'].split('/')[0]} | {row['bound']} "
            f"| {row['refused_429']} |"
        )
    print()
    print(
        f"| throughput (wrk, {args.connections} connections per host, {args.wrk_rounds} × "
        f"{args.seconds} s; medians) "
        "| host a req/s | a p99 ms | host b req/s | b p99 ms | sum req/s | worker CPU µs/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for view, scenarios in results["throughput"].items():
        for scenario, rounds in scenarios.items():
            cells = []
            for name in HOSTS:
                runs = [run[name] for run in rounds if name in run]
                if runs:
                    cells += [
                        f"{statistics.median(r['rps'] for r in runs):,.0f}",
                        f"{statistics.median(r['p99'] for r in runs):.1f}",
                    ]
                else:
                    cells += ["", ""]
            total = statistics.median(sum(r["rps"] for r in run.values()) for run in rounds)
            cpu = statistics.median(
                sum(r["cpu_us"] * r["requests"] for r in run.values())
                / max(sum(r["requests"] for r in run.values()), 1)
                for run in rounds
            )
            label = {"a": "a alone", "b": "b alone", "a+b": "a and b at once"}[scenario]
            errors = sum(r["non_2xx"] + r["socket_errors"] for run in rounds for r in run.values())
            note = f" ({errors} errors)" if errors else ""
            print(f"| {view}, {label}{note} | {' | '.join(cells)} | {total:,.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
