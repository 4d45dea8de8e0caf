"""Keyward at scale: 1,000,000 keys, 10,000 organisations, 1,000,000 audit events.

`make bench-scale` fills PostgreSQL database kw_scale (and kw_scale_small,
with 1,000 keys, for comparison) with COPY, then prints:

- authentication time per call in-process, at 1,000,000 keys against 1,000
  keys, cold (the per-process cache emptied before each call: one indexed
  query) and warm (from the cache: no query);
- server time of the first page of an organisation's keys (GET /api/v1/keys,
  through the whole middleware stack), of its audit events (newest first by
  seq, limit 51) and of its usage (KeyUsageDay for 30 days), each with
  EXPLAIN (ANALYZE, BUFFERS).

Rows are made up but valid: key ids and hashes have the real shapes, audit
events chain their hashes per organisation. A few hundred keys have real
tokens, derived from a fixed seed (so a reused fill can still be measured)
and hashed with tokens.hash_token; the rest have random hashes. One
organisation ("big") holds a tenth of all keys and events, the rest share
them evenly. A fill is reused while its parameters match (--refill forces a
new one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import bench_env, database_name, database_url, manage, redis_url
from harness.environment import admin_url
from harness.postgres import recreate_database

REDIS_URL = redis_url("bench")
# kw_scale and kw_scale_small, unless KEYWARD_DATABASE_PREFIX moves them (docs/harness.md).
BIG, SMALL = database_name("scale"), database_name("scale_small")
SEED = 20261123
KNOWN = 500  # keys with real tokens, measured in both databases
BIG_SHARE = 0.10
USAGE_DAYS = 30
BIG_ORG_USAGE_KEYS = 500
USAGE_KEYS_PER_ORG = 2
CHUNK = 20_000
FILL_VERSION = 2
SCOPES = '["keys:read", "audit:read", "usage:read"]'


def known_token(index: int) -> tuple[str, str]:
    """Return (key id, token) of known key `index`: the same on every run."""
    from apikeys import tokens

    rng = random.Random(f"{SEED}-known-{index}")
    key_id = "".join(rng.choices(tokens.ALPHABET, k=tokens.KEY_ID_LENGTH))
    secret = "".join(rng.choices(tokens.ALPHABET, k=tokens.SECRET_LENGTH))
    body = f"{tokens.brand()}_live_{key_id}_{secret}"
    return key_id, body + tokens.checksum(body)


def _marker(keys: int, orgs: int, events: int) -> str:
    return f"keyward-scale v{FILL_VERSION} keys={keys} orgs={orgs} events={events} seed={SEED}"


def _current_marker(database: str) -> str | None:
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [database],
        ).fetchone()
    return row[0] if row else None


def _ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def fill(database: str, keys: int, orgs: int, events: int) -> None:
    """Recreate `database`, migrate it, and COPY the made-up rows in."""
    import psycopg

    started = time.monotonic()
    recreate_database(database)
    manage(bench_env(database, REDIS_URL), "migrate", "--no-input")
    from apikeys import tokens

    rng = random.Random(SEED)
    now = time.time()
    start = now - 2 * 365 * 86400
    big_keys = int(keys * BIG_SHARE)
    big_events = int(events * BIG_SHARE)
    step = max(1, keys // KNOWN)

    def org_of(index: int, big_count: int) -> int:
        return 1 if index < big_count else 2 + (index - big_count) % (orgs - 1)

    with psycopg.connect(database_url(database), autocommit=False) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK triggers during the load
        conn.execute("SET synchronous_commit = off")
        with conn.cursor() as cur:
            with cur.copy(
                "COPY orgs_organization (id, name, slug, created_at, members_can_create_keys) "
                "FROM STDIN"
            ) as copy:
                for org in range(1, orgs + 1):
                    slug = "big" if org == 1 else f"org-{org}"
                    copy.write(f"{org}\t{slug.title()}\t{slug}\t{_ts(start)}\tf\n")
            with cur.copy(
                "COPY orgs_user (id, password, is_superuser, email, full_name, is_staff, "
                "is_active, date_joined) FROM STDIN"
            ) as copy:
                for org in range(1, orgs + 1):
                    copy.write(f"{org}\t!\tf\towner{org}@scale.example\t\tf\tt\t{_ts(start)}\n")
            with cur.copy(
                "COPY orgs_membership (id, role, created_at, user_id, organization_id) FROM STDIN"
            ) as copy:
                for org in range(1, orgs + 1):
                    copy.write(f"{org}\towner\t{_ts(start)}\t{org}\t{org}\n")
            print(f"  {database}: {orgs:,} organisations", flush=True)

            usage_keys: list[tuple[str, int]] = []
            per_org_usage: dict[int, int] = {}
            seen: set[str] = set()
            columns = (
                "id, created_by_type, created_by_label, name, environment, scopes, secret_hash, "
                "last4, created_at, updated_at, revoked_by, allowed_ips, usage_count, "
                "organization_id, last_used_at"
            )
            with cur.copy(f"COPY apikeys_apikey ({columns}) FROM STDIN") as copy:
                rows = []
                for i in range(keys):
                    if i % step == 0 and i // step < KNOWN:
                        index = i // step
                        key_id, token = known_token(index)
                        secret_hash = tokens.hash_token(token)
                        last4 = token[-4:]
                        org = 1 if index == 0 else org_of(i, big_keys)
                        last_used = _ts(now)
                    else:
                        key_id = "".join(rng.choices(tokens.ALPHABET, k=12))
                        secret_hash = f"{rng.getrandbits(256):064x}"
                        last4 = key_id[:4]
                        org = org_of(i, big_keys)
                        last_used = "\\N"
                    if key_id in seen:
                        continue
                    seen.add(key_id)
                    created = _ts(start + (i / keys) * (now - start))
                    rows.append(
                        f"{key_id}\tsystem\tscale\tkey {i}\tlive\t{SCOPES}\t{secret_hash}"
                        f"\t{last4}\t{created}\t{created}\t\t[]\t0\t{org}\t{last_used}\n"
                    )
                    limit = BIG_ORG_USAGE_KEYS if org == 1 else USAGE_KEYS_PER_ORG
                    if per_org_usage.get(org, 0) < limit:
                        per_org_usage[org] = per_org_usage.get(org, 0) + 1
                        usage_keys.append((key_id, org))
                    if len(rows) >= CHUNK:
                        copy.write("".join(rows))
                        rows.clear()
                copy.write("".join(rows))
            print(f"  {database}: {keys:,} keys ({time.monotonic() - started:.0f} s)", flush=True)

            chains: dict[int, tuple[int, str]] = {}
            columns = (
                "id, occurred_at, action, actor_type, actor_id, actor_label, user_agent, "
                "request_id, trace_id, target_type, target_id, target_label, changes, seq, "
                "prev_hash, hash, organization_id"
            )
            with cur.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
                rows = []
                for i in range(events):
                    org = org_of(i, big_events)
                    seq, prev = chains.get(org, (0, "0" * 64))
                    digest = f"{rng.getrandbits(256):064x}"
                    chains[org] = (seq + 1, digest)
                    rows.append(
                        f"{i + 1}\t{_ts(start + (i / events) * (now - start))}\tapi_key.updated"
                        f"\tsystem\t\tscale\t\t{rng.getrandbits(64):016x}\t\tapi_key\tk{i % 997}"
                        f'\tkey\t{{"name": {{"before": "a", "after": "b"}}}}\t{seq + 1}\t{prev}'
                        f"\t{digest}\t{org}\n"
                    )
                    if len(rows) >= CHUNK:
                        copy.write("".join(rows))
                        rows.clear()
                copy.write("".join(rows))
            print(f"  {database}: {events:,} audit events ({time.monotonic() - started:.0f} s)")

            today = date.today()
            with cur.copy(
                "COPY apikeys_keyusageday (id, day, count, key_id, organization_id) FROM STDIN"
            ) as copy:
                rows = []
                row_id = 0
                for key_id, org in usage_keys:
                    for back in range(USAGE_DAYS):
                        row_id += 1
                        day = today - timedelta(days=back)
                        rows.append(f"{row_id}\t{day}\t{rng.randrange(1, 5000)}\t{key_id}\t{org}\n")
                    if len(rows) >= CHUNK:
                        copy.write("".join(rows))
                        rows.clear()
                copy.write("".join(rows))
            print(f"  {database}: {row_id:,} usage days", flush=True)
            for table in ("orgs_organization", "orgs_user", "orgs_membership", "audit_auditevent"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('apikeys_keyusageday', 'id'), %s)",
                [max(row_id, 1)],
            )
        conn.commit()
    with psycopg.connect(database_url(database), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{database}\" IS '{_marker(keys, orgs, events)}'")
    print(f"  {database}: filled in {time.monotonic() - started:.0f} s", flush=True)


# --- measuring, in a process of its own per database -------------------------------------


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def _captured(fn, table: str) -> str:
    """Run `fn` and return the SQL of its query on `table` that has a LIMIT or a date range."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        fn()
    for query in queries:
        if f'FROM "{table}"' in query["sql"]:
            return query["sql"]
    raise RuntimeError(f"no query on {table}")


def measure(database: str, passes: int) -> dict:
    """Measure one database; return the figures as a dict (printed as JSON)."""
    os.environ.update(bench_env(database, REDIS_URL))
    import django

    django.setup()
    from django.core.cache import cache
    from django.test import Client, RequestFactory
    from rest_framework.request import Request

    from apikeys.authentication import APIKeyAuthentication
    from apikeys.cache import verified_keys

    cache.clear()
    requests = []
    for index in range(KNOWN):
        _, token = known_token(index)
        request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
        request.client_ip = "127.0.0.1"
        requests.append(Request(request))
    auth = APIKeyAuthentication()
    for request in requests:  # sets last_used_at where a reused fill has it stale
        auth.authenticate(request)

    def cold_pass() -> None:
        for request in requests:
            verified_keys.clear()
            auth.authenticate(request)

    def warm_pass() -> None:
        for request in requests:
            auth.authenticate(request)

    warm_pass()
    warm_pass()
    result: dict = {"database": database}
    result["auth_cold_us"] = min(
        _median_ms(cold_pass, 1) * 1000 / len(requests) for _ in range(passes)
    )
    result["auth_warm_us"] = min(
        _median_ms(warm_pass, 1) * 1000 / len(requests) for _ in range(passes)
    )

    # The size-dependent part of a cold call is the indexed lookup itself: its execution
    # time inside PostgreSQL, free of the scheduling noise a loaded machine adds around it.
    lookups = []
    for request in requests[:100]:

        def cold_one(request=request):
            verified_keys.clear()
            auth.authenticate(request)

        plan = _explain(_captured(cold_one, "apikeys_apikey"))
        lookups.append(float(plan.rsplit("Execution Time: ", 1)[1].split()[0]) * 1000)
    result["auth_lookup_us"] = statistics.median(lookups)
    result["auth_lookup_explain"] = plan

    big_token = known_token(0)[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {big_token}")
    assert client.get("/api/v1/keys").status_code == 200
    result["keys_page_ms"] = _median_ms(lambda: client.get("/api/v1/keys"), 30)
    result["keys_page_explain"] = _explain(
        _captured(lambda: client.get("/api/v1/keys"), "apikeys_apikey")
    )

    # Both endpoints exist since the audit and usage work landed: time them whole.
    result["audit_page_ms"] = _median_ms(lambda: client.get("/api/v1/audit-events"), 30)
    result["audit_page_explain"] = _explain(
        _captured(lambda: client.get("/api/v1/audit-events"), "audit_auditevent")
    )
    # The usage endpoint answers every key of the organisation at once (no pages yet):
    # time it for the big organisation only twice, and explain it for a typical one.
    response = client.get("/api/v1/usage")
    assert response.status_code == 200, response.content[:200]
    result["usage_ms"] = _median_ms(lambda: client.get("/api/v1/usage"), 2)
    typical = Client(HTTP_AUTHORIZATION=f"Bearer {known_token(KNOWN - 1)[1]}")
    result["usage_typical_keys"] = len(typical.get("/api/v1/usage").json()["keys"])
    result["usage_typical_ms"] = _median_ms(lambda: typical.get("/api/v1/usage"), 30)
    result["usage_explain"] = _explain(
        _captured(lambda: typical.get("/api/v1/usage"), "apikeys_keyusageday")
    )
    return result


def run_measure(database: str, passes: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--measure", database, "--passes", str(passes)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small-keys", type=int, default=1_000)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="big/small alternations")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.passes)))
        return 0

    os.environ.update(bench_env(BIG, REDIS_URL))
    import django

    django.setup()  # tokens.hash_token needs the bench pepper
    started = time.monotonic()
    plans = {
        BIG: (args.keys, args.orgs, args.events),
        SMALL: (args.small_keys, 10, args.small_keys),
    }
    for database, (keys, orgs, events) in plans.items():
        if args.refill or _current_marker(database) != _marker(keys, orgs, events):
            fill(database, keys, orgs, events)
        else:
            print(f"  {database}: reusing the fill ({_marker(keys, orgs, events)})")
    print(f"Fill: {time.monotonic() - started:.0f} s", flush=True)

    results: dict[str, list[dict]] = {name: [] for name in plans}
    for _ in range(args.rounds):  # alternate, so that load on the machine hits both alike
        for database in plans:
            results[database].append(run_measure(database, args.passes))

    def best(database: str, field: str) -> float:
        return min(r[field] for r in results[database])

    big, small = BIG, SMALL
    print()
    print(
        f"Authentication per call, {args.keys:,} keys vs {args.small_keys:,} keys (target ≤ 1.2×)"
    )
    print("| path | ratio | at 1M keys µs | at 1k keys µs |")
    print("|---|---:|---:|---:|")
    for label, field in (
        ("cold: whole call (cache emptied, one indexed query)", "auth_cold_us"),
        ("cold: the lookup inside PostgreSQL (EXPLAIN ANALYZE)", "auth_lookup_us"),
        ("warm: whole call (cache, no query)", "auth_warm_us"),
    ):
        b, s = best(big, field), best(small, field)
        print(f"| {label} | {b / s:.2f} | {b:.1f} | {s:.1f} |")
    print()
    last = results[big][-1]
    print(f"Server time at {args.keys:,} keys and {args.events:,} events (target < 50 ms)")
    print("| what | ms (median) |")
    print("|---|---:|")
    print(
        f"| GET /api/v1/keys, first page, org with {int(args.keys * BIG_SHARE):,} keys "
        f"| {best(big, 'keys_page_ms'):.1f} |"
    )
    print(
        f"| GET /api/v1/audit-events, first page, org with {int(args.events * BIG_SHARE):,} "
        f"events | {best(big, 'audit_page_ms'):.1f} |"
    )
    print(
        f"| GET /api/v1/usage, org with {int(args.keys * BIG_SHARE):,} keys, first page "
        f"| {best(big, 'usage_ms'):.1f} |"
    )
    print(
        f"| GET /api/v1/usage, typical org ({last['usage_typical_keys']} keys shown) "
        f"| {best(big, 'usage_typical_ms'):.1f} |"
    )
    for label, field in (
        ("authentication lookup", "auth_lookup_explain"),
        ("GET /api/v1/keys", "keys_page_explain"),
        ("GET /api/v1/audit-events", "audit_page_explain"),
        ("GET /api/v1/usage (typical org)", "usage_explain"),
    ):
        print(f"\nEXPLAIN (ANALYZE, BUFFERS), {label}:\n{last[field]}")
    print(f"\nFinished in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
