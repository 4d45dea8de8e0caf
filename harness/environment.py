"""The environment of a production-like process, and the names runs keep apart by.

`production_env()` is the one environment builder: DEBUG off, fresh secrets,
plain HTTP on loopback, and nothing of the calling process's Django settings.
It starts from a short allowlist of the caller's variables (PATH, HOME, locale…),
never from all of them: a test run's own settings (its database, its cache, a
usage flush turned off for tests) must not leak into a server that stands in
for production. Anything else a run needs is passed explicitly.

The fixed databases and Redis databases the tests and benchmarks use can be moved
so that parallel runs on one machine keep apart (defaults unchanged):

    KEYWARD_DATABASE_PREFIX=kw_alice   → kw_alice_bench, kw_alice_scale, kw_alice_mp, …
    KEYWARD_BENCH_REDIS_URL, KEYWARD_MULTIPROCESS_REDIS_URL, KEYWARD_LOAD_REDIS_URL
    KEYWARD_PG_ADMIN_URL               → the PostgreSQL server those databases live on
"""

from __future__ import annotations

import os
import re
import secrets

from harness.base import ROOT, HarnessError

# Variables a child may inherit: the system's, never the application's.
INHERITED = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM"}
INHERITED_PREFIXES = ("LC_",)

ADMIN_URL_VARIABLE = "KEYWARD_PG_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX_VARIABLE = "KEYWARD_DATABASE_PREFIX"
DEFAULT_DATABASE_PREFIX = "kw"
# purpose → (variable, default): the Redis databases of benchmarks and server tests.
REDIS_URL_VARIABLES = {
    "bench": ("KEYWARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    "multiprocess": ("KEYWARD_MULTIPROCESS_REDIS_URL", "redis://127.0.0.1:6379/12"),
    "load": ("KEYWARD_LOAD_REDIS_URL", "redis://127.0.0.1:6379/15"),
}


def base_env() -> dict[str, str]:
    """Return the caller's system variables (PATH, HOME, locale…) and nothing else."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in INHERITED or name.startswith(INHERITED_PREFIXES)
    }


def production_env(
    *,
    settings: str = "config.settings",
    database_url: str | None = None,
    redis_url: str | None = None,
    fresh_secrets: bool = True,
    plain_http: bool = True,
    **overrides: str,
) -> dict[str, str]:
    """Return the environment of a production-like Keyward process.

    DEBUG off, new random SECRET_KEY and KEYWARD_PEPPER (unless `fresh_secrets`
    is false: then the settings module's own, as bench.settings has), hosts
    127.0.0.1 and localhost over plain HTTP (unless `plain_http` is false: then
    production's own HTTPS redirect and secure cookies). `database_url` and
    `redis_url` are the process's DATABASE_URL and REDIS_URL; without them the
    settings' defaults apply (SQLite, the local-memory cache). `overrides` come last.
    """
    env = base_env()
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        KEYWARD_ENV_FILE="",  # never the checkout's development .env
    )
    if plain_http:  # loopback: no redirect to HTTPS, cookies without Secure
        env.update(
            SECURE_SSL_REDIRECT="false", SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false"
        )
    if fresh_secrets:
        env.update(SECRET_KEY=secrets.token_urlsafe(50), KEYWARD_PEPPER=secrets.token_urlsafe(48))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env.update(overrides)
    return env


def database_name(purpose: str) -> str:
    """Return the name of the database used for `purpose`: `kw_<purpose>` by default.

    KEYWARD_DATABASE_PREFIX replaces `kw` (it must start with kw: the harness
    drops only databases whose names start with kw_).
    """
    prefix = os.environ.get(DATABASE_PREFIX_VARIABLE) or DEFAULT_DATABASE_PREFIX
    if not re.fullmatch(r"kw(_[a-z0-9_]+)?", prefix):
        raise HarnessError(
            f"{DATABASE_PREFIX_VARIABLE}={prefix!r}: expected kw or kw_ and lower-case letters, "
            "digits or _"
        )
    return f"{prefix}_{purpose}"


def redis_url(purpose: str) -> str:
    """Return the Redis URL used for `purpose` (bench, multiprocess, load)."""
    variable, default = REDIS_URL_VARIABLES[purpose]
    return os.environ.get(variable) or default


def admin_url() -> str:
    """Return the maintenance database URL of the server the benchmarks' databases live on.

    KEYWARD_PG_ADMIN_URL, else BENCH_PG_ADMIN_URL (its older name), else the local
    server's `postgres` database.
    """
    return (
        os.environ.get(ADMIN_URL_VARIABLE)
        or os.environ.get("BENCH_PG_ADMIN_URL")
        or DEFAULT_ADMIN_URL
    )


def database_url(name: str, server_url: str | None = None) -> str:
    """Return the DATABASE_URL of database `name` on the server of `server_url` (or admin_url)."""
    base = (server_url or admin_url()).rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgres://', 1)}/{name}"


def bench_env(
    database: str, redis: str, *, server_url: str | None = None, **overrides: str
) -> dict[str, str]:
    """Return the environment of a benchmark process on database `database` and Redis `redis`.

    Production settings plus the bench views and peers (bench.settings), with that
    module's fixed secrets rather than fresh ones: a fill hashed by one run must
    verify in the next. BENCH_PEERS=0 (no peer libraries) is passed on when set.
    """
    if "BENCH_PEERS" in os.environ:
        overrides.setdefault("BENCH_PEERS", os.environ["BENCH_PEERS"])
    # bench/scale.py measures pages in-process with Django's test client (host testserver).
    overrides.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
    return production_env(
        settings="bench.settings",
        database_url=database_url(database, server_url),
        redis_url=redis,
        fresh_secrets=False,
        **overrides,
    )
