"""A bounded load run on loopback: `make load`, or `python bench/load.py [--duration 60]`.

Starts gunicorn (one sync worker per core) on 127.0.0.1 against PostgreSQL
(database kw_load, created and migrated here) with Redis as the cache, under a
key prefix of this run's own. Through the services it prepares an organisation
and keys: valid keys, one without keys:read, one limited to 10 requests a
second, one revoked before the run, one revoked half-way through it, and
invalid tokens (malformed, bad checksum, unknown key, wrong secret). Tokens are
minted at run time and reach wrk only through a 0600 file in a temporary
directory, deleted at the end.

wrk (bench/load.lua) mixes GET /api/v1/whoami and GET /api/v1/keys over those
keys and tallies every answer per key class. Half-way through, this script
revokes one valid key with POST /api/v1/keys/{id}/revoke and notes the wall
clock when the answer returned. Every request carries its send time (Unix ms,
clock_gettime through LuaJIT's ffi) in X-Request-Id, which the server echoes,
so the check is exact and needs no guessing about what was in flight: no 200
may answer a request of that key sent after the revoke returned, and nothing
but 200 may answer one sent before the revoke was sent.

Then gunicorn gets SIGTERM (workers flush their usage counts as they exit),
and the run fails unless: no 5xx; no wrong answer (every answer is in its key
class's expected set: valid keys 200; the narrow key 403 on /keys; the limited
key 200 or 429 with Retry-After and RateLimit-*; revoked and invalid tokens 401,
or 429 from the invalid-key guard); no socket error or timeout; every key's
usage_count equals the answers the server counted for it (usage counts every
request a key authenticates: 200s, but also its 403 missing_scope and 429
rate_limited answers; docs/README-usage.md); nothing left pending in Redis;
no traceback and no token in the server's log.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from harness import (  # noqa: E402
    Gunicorn,
    StartFailed,
    database_name,
    database_url,
    production_env,
    redis_url,
)
from harness.postgres import ensure_database  # noqa: E402

# kw_load and Redis database 15, unless KEYWARD_DATABASE_PREFIX / KEYWARD_LOAD_REDIS_URL
# move them (docs/harness.md).
DEFAULT_DATABASE_URL = database_url(database_name("load"))
DEFAULT_REDIS_URL = redis_url("load")
# The last seconds send only GET /healthz without a key, so that every request usage counts
# is answered before wrk stops (checked: requests built == answered, per class).
DRAIN_SECONDS = 3
WRK_TIMEOUT_SECONDS = 10  # an answer slower than this fails the run
WHOAMI, KEYS = "/api/v1/whoami", "/api/v1/keys"
# Tight enough to bite even when a busy machine serves only ~100 requests/s (the limited
# key gets a seventh of them).
LIMITED_RATE = "10/s"


@dataclass
class Entry:
    """One kind of request in the mix: a key class, a path, a token, and what may answer."""

    cls: str
    path: str
    weight: int
    token: str | None
    key_id: str | None
    expects: tuple[str, ...]


@dataclass
class Revocation:
    key_id: str
    sent_ms: int = 0
    returned_ms: int = 0
    status: int = 0
    error: str = ""

    @property
    def done(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class Results:
    summary: dict[str, float] = field(default_factory=dict)
    tally: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    built: Counter[tuple[str, str]] = field(default_factory=Counter)  # requests made
    wrong: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    counted: Counter[str] = field(default_factory=Counter)  # 200, 403, 429-rate per key id
    accepted: Counter[str] = field(default_factory=Counter)  # 2xx per key id
    # Send times (Unix ms) of the requests of the key revoked mid-run, by answer: ok or refused.
    sent: dict[str, list[int]] = field(default_factory=lambda: {"ok": [], "refused": []})
    start_ms: int = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (min 6)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    if args.duration < 6:
        parser.error("--duration must be at least 6 seconds")
    for url in (args.database_url, args.redis_url):
        host = re.match(r"^[a-z]+://(?:[^@/]*@)?([^:/]+)", url)
        if host is None or host.group(1) not in ("127.0.0.1", "localhost"):
            parser.error(f"{url!r}: the load run talks to 127.0.0.1 only")
    return args


def server_environment(args: argparse.Namespace, prefix: str) -> dict[str, str]:
    """Return production settings for loopback, with this run's secrets and cache prefix."""
    return production_env(
        database_url=args.database_url,
        redis_url=args.redis_url,
        ALLOWED_HOSTS="127.0.0.1",
        # Two connections cover a sync worker (its request and its usage flusher).
        DATABASE_POOL_MIN="1",
        DATABASE_POOL_MAX="4",
        CACHE_KEY_PREFIX=prefix,
    )  # and the product's usage flush: every 2 s


def prepare(run_id: str) -> tuple[list[Entry], dict[str, str], str, str]:
    """Create the organisation and keys; return the mix, key classes, control token, victim."""
    from apikeys import tokens
    from apikeys.models import APIKey
    from apikeys.services import api_key_create, api_key_revoke
    from audit.actors import Actor
    from orgs.models import User
    from orgs.services import organization_create

    actor = Actor.system("bench/load.py")
    owner = User.objects.create_user(email=f"load-{run_id}@example.com", password=None)
    org = organization_create(name=f"Load {run_id}", slug=f"load-{run_id}", owner=owner)

    def key(name: str, **fields) -> tuple[str, str]:
        created, token = api_key_create(organization=org, actor=actor, name=name, **fields)
        return created.pk, token

    names: dict[str, str] = {}
    entries: list[Entry] = []

    def add(cls, path, weight, token, key_id, *expects):
        entries.append(Entry(cls, path, weight, token, key_id, expects))

    valid = [key(f"valid {n}", scopes=["keys:read"]) for n in range(3)]
    for key_id, token in valid:
        names[key_id] = "valid"
        add("valid", WHOAMI, 2, token, key_id, "200")
        add("valid", KEYS, 1, token, key_id, "200")
    key_id, token = key("narrow", scopes=["usage:read"])
    names[key_id] = "narrow"
    add("narrow", WHOAMI, 1, token, key_id, "200")
    add("narrow", KEYS, 1, token, key_id, "403")
    key_id, token = key("limited", scopes=["keys:read"], rate_limit=LIMITED_RATE)
    names[key_id] = "limited"
    add("limited", WHOAMI, 3, token, key_id, "200", "429-rate")
    victim, token = key("revoked mid-run", scopes=["keys:read"])
    names[victim] = "midrun"
    add("midrun", WHOAMI, 2, token, victim, "200", "401", "429-guard")
    key_id, token = key("revoked before", scopes=["keys:read"])
    api_key_revoke(key=APIKey.objects.get(pk=key_id), actor=actor)
    names[key_id] = "revoked"
    add("revoked", WHOAMI, 1, token, key_id, "401", "429-guard")
    # A key changes only keys within its own scopes: the victim holds keys:read.
    control_id, control = key("control", scopes=["keys:read", "keys:write"])
    names[control_id] = "control"
    wrong_secret = tokens.generate("live", key_id=valid[0][0]).token
    for token in (
        "not-a-key",
        valid[1][1][:-1] + ("A" if valid[1][1][-1] != "A" else "B"),  # bad checksum
        tokens.generate("live").token,  # well-formed, unknown key
        wrong_secret,  # well-formed, known key, wrong secret
    ):
        add("invalid", WHOAMI, 1, token, None, "401", "429-guard")
    return entries, names, control, victim


def write_plan(path: Path, entries: list[Entry], drain_at_ms: int) -> None:
    """Write the mix for bench/load.lua, readable by this user only."""
    lines = [f"drain_at {drain_at_ms}", "track midrun"]
    for index, e in enumerate(entries, start=1):
        lines.append(
            f"entry {index} {e.weight} {e.cls} {e.path} {e.key_id or '-'} "
            f"{','.join(e.expects)} {e.token or '-'}"
        )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as plan:
        plan.write("\n".join(lines) + "\n")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def revoke_later(server, revocation: Revocation, token: str, at: float) -> threading.Thread:
    """Revoke the victim over the API at monotonic time `at`; note when it was sent and returned."""

    def run() -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        revocation.sent_ms = now_ms()
        try:
            answer = server.request(
                "POST", f"/api/v1/keys/{revocation.key_id}/revoke", token, timeout=30
            )
            revocation.status = answer.status
        except Exception as error:  # reported as a failure, never raised from the thread
            revocation.error = repr(error)
        revocation.returned_ms = now_ms()

    thread = threading.Thread(target=run, name="revoke-mid-run", daemon=True)
    thread.start()
    return thread


def parse_wrk(output: str) -> Results:
    results = Results()
    for line in output.splitlines():
        if not line.startswith("KWLOAD "):
            continue
        fields = line.split()
        kind = fields[1]
        if kind == "summary":
            names = "requests duration_us connect read write timeout non2xx unmatched p50 p99 max"
            results.summary = dict(zip(names.split(), map(float, fields[2:]), strict=True))
        elif kind == "built":
            results.built[(fields[2], fields[3])] += int(fields[4])
        elif kind in ("tally", "wrong"):
            getattr(results, kind)[tuple(fields[2:5])] += int(fields[5])
        elif kind in ("counted", "accepted"):
            getattr(results, kind)[fields[2]] += int(fields[3])
        elif kind == "sent" and fields[2] == "midrun":
            results.sent[fields[3]] += [int(fields[4])] * int(fields[5])
    if not results.summary:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    return results


def run_wrk(url: str, args: argparse.Namespace, plan: Path) -> subprocess.Popen:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("the load run sends traffic to 127.0.0.1 only")
    threads = max(1, min(args.connections, os.cpu_count() or 1, 4))
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        f"--timeout={WRK_TIMEOUT_SECONDS}s",
        "-s",
        str(BASE_DIR / "bench" / "load.lua"),
        url,
    ]
    return subprocess.Popen(
        command,
        env={**os.environ, "KEYWARD_LOAD_PLAN": str(plan)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )


@dataclass
class Outcome:
    """What the run saw: wrk's tallies, the revoke, and the state after the shutdown."""

    results: Results
    revocation: Revocation
    names: dict[str, str]  # key id -> key class
    expected_usage: Counter[str]  # key id -> answers the server counts for it
    accepted: Counter[str]  # key id -> 2xx answers
    usage: dict[str, int]  # key id -> usage_count after the shutdown
    pending: int  # requests still gathered in Redis after the shutdown
    gunicorn_status: int
    log_text: str
    tokens: list[str]


def fives(results: Results, revocation: Revocation) -> int:
    """Return the 5xx answers, wrk's and the revoke's."""
    own = 1 if revocation.status >= 500 else 0
    return own + sum(n for (_, _, label), n in results.tally.items() if label[:1] == "5")


def unanswered(results: Results) -> Counter[tuple[str, str]]:
    """Return the requests built but not answered, per class and path (in flight at the end)."""
    answered: Counter[tuple[str, str]] = Counter()
    for (cls, path, _label), n in results.tally.items():
        answered[(cls, path)] += n
    return Counter({name: n - answered[name] for name, n in results.built.items()})


def revocation_verdicts(results: Results, revocation: Revocation) -> tuple[int, int, int]:
    """Return the revoked key's 200s sent after the revoke returned, its refusals sent
    before the revoke was sent (both wrong), and its requests sent after the revoke returned."""
    ok, refused = results.sent["ok"], results.sent["refused"]
    if not revocation.done:  # the key stayed valid: every refusal was wrong
        return 0, len(refused), 0
    late_ok = sum(1 for sent in ok if sent >= revocation.returned_ms)
    early_refused = sum(1 for sent in refused if sent < revocation.sent_ms)
    after = late_ok + sum(1 for sent in refused if sent >= revocation.returned_ms)
    return late_ok, early_refused, after


def wrong_answers(results: Results, revocation: Revocation) -> int:
    late_ok, early_refused, _ = revocation_verdicts(results, revocation)
    return sum(results.wrong.values()) + late_ok + early_refused


def check(outcome: Outcome) -> list[str]:
    """Return every failure of the run, in words."""
    results, revocation = outcome.results, outcome.revocation
    failures = []
    if fives(results, revocation):
        failures.append(f"{fives(results, revocation)} answers were 5xx")
    for (cls, path, label), n in sorted(results.wrong.items()):
        failures.append(f"wrong answer: {cls} {path} got {label} {n} times")
    for name in ("connect", "read", "write", "timeout", "unmatched"):
        if results.summary[name]:
            failures.append(f"wrk saw {results.summary[name]:.0f} socket {name} errors")
    if not revocation.done:
        failures.append(f"revoke mid-run answered {revocation.status} {revocation.error}")
    late_ok, early_refused, after = revocation_verdicts(results, revocation)
    if late_ok:
        failures.append(
            f"the key revoked mid-run got 200 for {late_ok} requests sent after its revoke returned"
        )
    if early_refused:
        failures.append(
            f"the key revoked mid-run was refused {early_refused} times before its revoke was sent"
        )
    if revocation.done and not after:
        failures.append("no request of the key revoked mid-run was sent after its revoke returned")
    for (cls, path), count in sorted(unanswered(results).items()):
        if cls != "drain" and count:
            failures.append(
                f"{count} requests of {cls} {path} were not answered before wrk stopped"
            )
    if not any(c == "limited" and lb == "429-rate" for c, _, lb in results.tally):
        failures.append("the limited key was never rate-limited")
    for key_id, name in outcome.names.items():
        if outcome.usage[key_id] != outcome.expected_usage[key_id]:
            failures.append(
                f"usage_count of the {name} key {key_id} is {outcome.usage[key_id]}, "
                f"expected {outcome.expected_usage[key_id]}"
            )
    if outcome.pending:
        failures.append(f"{outcome.pending} requests still pending in Redis after the shutdown")
    if outcome.gunicorn_status != 0:
        failures.append(f"gunicorn exited with {outcome.gunicorn_status} on SIGTERM")
    for marker in ("Traceback", "Internal Server Error", "WORKER TIMEOUT", "[CRITICAL]"):
        if marker in outcome.log_text:
            failures.append(f"the server log holds {marker!r}")
    leaked = [t for t in outcome.tokens if t.startswith("kw_") and t in outcome.log_text]
    if leaked:
        failures.append(f"{len(leaked)} tokens appear in the server log")
    return failures


def relative(moment_ms: int, reference_ms: int) -> str:
    """Say when `moment_ms` was relative to the revoke's `reference_ms`."""
    delta = moment_ms - reference_ms
    return f"{abs(delta)} ms {'after' if delta >= 0 else 'before'} the revoke"


def report(outcome: Outcome, args: argparse.Namespace, workers: int) -> None:
    results, revocation = outcome.results, outcome.revocation
    s = results.summary
    drained = sum(n for (cls, _, _), n in results.tally.items() if cls == "drain")
    api = s["requests"] - drained
    api_seconds = args.duration - DRAIN_SECONDS
    print(
        f"\nKeyward load run: {args.duration} s, {args.connections} connections, "
        f"gunicorn {workers} sync workers, PostgreSQL + Redis, loopback"
    )
    in_flight = unanswered(results)
    print(
        f"requests made: {sum(results.built.values())}, answered: {s['requests']:.0f}; "
        f"unanswered when wrk stopped: {sum(in_flight.values())}, "
        f"all GET /healthz: {in_flight[('drain', '/healthz')] == sum(in_flight.values())}"
    )
    print(f"  API mix: {api:.0f} in the first {api_seconds} s = {api / api_seconds:.0f} requests/s")
    print(
        f"  GET /healthz without a key: {drained} (the last {DRAIN_SECONDS} s, "
        "and each wrk thread's first request)"
    )
    print(
        f"latency over all answers: p50 {s['p50'] / 1000:.1f} ms, p99 {s['p99'] / 1000:.1f} ms, "
        f"max {s['max'] / 1000:.1f} ms"
    )
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for (cls, path, label), n in results.tally.items():
        per_class[f"{cls} {path}"][label] += n
    print("\nanswers per key class (429-rate: the key's limit; 429-guard: the invalid-key guard):")
    for name in sorted(per_class):
        labels = ", ".join(f"{label}: {n}" for label, n in sorted(per_class[name].items()))
        print(f"  {name:<28} {labels}")
    print(f"\n5xx seen: {fives(results, revocation)}")
    print(f"wrong answers: {wrong_answers(results, revocation)}")
    print(
        f"socket errors: connect {s['connect']:.0f}, read {s['read']:.0f}, "
        f"write {s['write']:.0f}, timeout {s['timeout']:.0f}"
    )
    at = (revocation.sent_ms - results.start_ms) / 1000
    took = revocation.returned_ms - revocation.sent_ms
    print(
        f"\nrevoked mid-run: revoke sent at +{at:.1f} s, answered {revocation.status} in {took} ms"
    )
    late_ok, early_refused, after = revocation_verdicts(results, revocation)
    ok, refused = results.sent["ok"], results.sent["refused"]
    if ok:
        print(f"  last 200: to a request sent {relative(max(ok), revocation.returned_ms)} returned")
    if refused:
        first = relative(min(refused), revocation.sent_ms)
        print(f"  first refusal: to a request sent {first} was sent")
    print(
        f"  requests sent after the revoke returned: {after}, answered 200: {late_ok}; "
        f"refused before the revoke was sent: {early_refused}"
    )
    print(
        "\nusage_count after SIGTERM vs the answers usage counts (every request the key\n"
        "authenticated: 200, 403 missing_scope and 429 rate_limited alike), and their 2xx:"
    )
    for key_id, name in sorted(outcome.names.items(), key=lambda item: item[1]):
        usage, expected = outcome.usage[key_id], outcome.expected_usage[key_id]
        mark = "ok" if usage == expected else "MISMATCH"
        print(
            f"  {name:<8} {key_id}  usage_count {usage:>6}  counted {expected:>6}  {mark:<8}"
            f"  2xx {outcome.accepted[key_id]:>6}"
        )
    print(
        f"  {'all':<8} {'':12}  usage_count {sum(outcome.usage.values()):>6}  "
        f"counted {sum(outcome.expected_usage.values()):>6}  {'':<8}"
        f"  2xx {sum(outcome.accepted.values()):>6}"
    )
    print(f"pending in Redis after the shutdown: {outcome.pending}")


def print_log_excerpt(log_text: str, lines: int = 40) -> None:
    """Print the end of the server log, without Django's one-line 4xx notes, tokens masked."""
    routine = re.compile(r"^(Unauthorized|Forbidden|Too Many Requests): /")
    token = re.compile(r"kw_(live|test)_[0-9A-Za-z_]+")
    kept = [line for line in log_text.splitlines() if not routine.match(line)]
    print(f"\nserver log, last {lines} lines other than 4xx notes:")
    for line in kept[-lines:]:
        print("  " + token.sub("kw_…", line))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}".lower()
    prefix = f"kwload-{run_id}"
    env = server_environment(args, prefix)
    os.environ.update(env)
    ensure_database(args.database_url)

    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connections

    from apikeys.counters import redis_client
    from apikeys.models import APIKey
    from apikeys.usage import PENDING_KEY

    workdir = Path(tempfile.mkdtemp(prefix="kw_load_"))
    server = wrk = None
    redis = redis_client(cache)
    if redis is None:
        print(f"{args.redis_url} is not a Redis cache URL", file=sys.stderr)
        return 2
    try:
        call_command("migrate", verbosity=0, interactive=False)
        entries, names, control, victim = prepare(run_id)
        connections.close_all()
        workers = max(1, args.workers)
        try:
            server = Gunicorn(env, workers=workers, graceful_timeout=30).start()
        except StartFailed as failure:
            print(failure, file=sys.stderr)
            return 1
        plan = workdir / "plan"
        start_ms = now_ms()
        write_plan(plan, entries, start_ms + (args.duration - DRAIN_SECONDS) * 1000)
        revocation = Revocation(key_id=victim)
        started = time.monotonic()
        wrk = run_wrk(f"{server.url}/", args, plan)
        halfway = (args.duration - DRAIN_SECONDS) / 2
        revoker = revoke_later(server, revocation, control, started + halfway)
        output, _ = wrk.communicate(timeout=args.duration + 60)
        revoker.join(timeout=60)
        if wrk.returncode != 0:
            print(f"{output}\nwrk exited with status {wrk.returncode}", file=sys.stderr)
            return 1
        results = parse_wrk(output)
        results.start_ms = start_ms
        gunicorn_status = server.stop(timeout=60, check=False)  # a bad status fails the run
        expected = Counter({key_id: results.counted[key_id] for key_id in names})
        control_id = next(key_id for key_id, cls in names.items() if cls == "control")
        expected[control_id] += 1  # the revoke this script sent
        accepted = Counter({key_id: results.accepted[key_id] for key_id in names})
        accepted[control_id] += 1 if revocation.status == 200 else 0
        outcome = Outcome(
            results=results,
            revocation=revocation,
            names=names,
            expected_usage=expected,
            accepted=accepted,
            usage=dict(APIKey.objects.filter(pk__in=names).values_list("pk", "usage_count")),
            pending=sum(int(v) for v in redis.hvals(cache.make_and_validate_key(PENDING_KEY))),
            gunicorn_status=gunicorn_status,
            log_text=server.output(),
            tokens=[e.token for e in entries if e.token] + [control],
        )
        report(outcome, args, workers)
        failures = check(outcome)
        if failures:
            print("\nFAILED:")
            for failure in failures:
                print(f"  - {failure}")
            print_log_excerpt(outcome.log_text)
            return 1
        print("\nOK: no 5xx, no wrong answer, every usage_count equals its counted answers.")
        return 0
    finally:
        if wrk is not None and wrk.poll() is None:
            os.killpg(wrk.pid, signal.SIGKILL)
            wrk.wait(timeout=10)
        if server is not None:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        names_left = list(redis.scan_iter(match=f"{prefix}:*"))
        if names_left:
            redis.delete(*names_left)
        connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
