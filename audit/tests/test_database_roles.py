"""The deployment docs/README-database-roles.md describes, in real processes on PostgreSQL.

A non-superuser owner role migrates a fresh database and runs `dbgrants`; the
application then runs as a second non-superuser role, in its own processes, and
can write and prune the audit log only the way the application does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _url(role: str, password: str, database: str) -> str:
    settings = connection.settings_dict
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{role}:{password}@{host}:{port}/{database}"


def manage(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CACHE_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings_test", DATABASE_URL=url)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=300,
    )  # fmt: skip


@pytest.fixture
def deployment(db):
    """A database owned by a non-superuser owner role, and an application role; dropped after."""
    if connection.vendor != "postgresql":
        pytest.skip("database roles are PostgreSQL's")
    base = connection.settings_dict["NAME"].removeprefix("test_")
    names = {
        "database": f"{base}_roles_test"[:63],
        "owner": f"{base}_test_owner"[:63],
        "app": f"{base}_test_runtime"[:63],
    }
    passwords = {role: secrets.token_hex(16) for role in ("owner", "app")}
    qn = connection.ops.quote_name
    admin = psycopg.connect(
        _admin_dsn(connection.settings_dict, "postgres"), autocommit=True
    )  # the superuser the suite runs as, outside the test's transaction

    def drop() -> None:
        admin.execute(f"DROP DATABASE IF EXISTS {qn(names['database'])} WITH (FORCE)")
        for role in ("app", "owner"):
            admin.execute(f"DROP ROLE IF EXISTS {qn(names[role])}")

    drop()
    for role in ("owner", "app"):
        admin.execute(
            f"CREATE ROLE {qn(names[role])} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"PASSWORD '{passwords[role]}'"
        )
    admin.execute(f"CREATE DATABASE {qn(names['database'])} OWNER {qn(names['owner'])}")
    admin.execute(f"REVOKE ALL ON DATABASE {qn(names['database'])} FROM PUBLIC")
    admin.execute(f"GRANT CONNECT ON DATABASE {qn(names['database'])} TO {qn(names['app'])}")
    # PostgreSQL 15 no longer lets everyone create in schema public; the owner needs to.
    with psycopg.connect(
        _admin_dsn(connection.settings_dict, names["database"]), autocommit=True
    ) as fresh:
        fresh.execute(f"ALTER SCHEMA public OWNER TO {qn(names['owner'])}")
    try:
        yield {
            "owner": _url(names["owner"], passwords["owner"], names["database"]),
            "app": _url(names["app"], passwords["app"], names["database"]),
            "app_role": names["app"],
        }
    finally:
        drop()
        admin.close()


def _admin_dsn(settings: dict, database: str) -> str:
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    password = f" password={settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return f"host={host} port={port} user={settings['USER']} dbname={database}{password}"


def refused(url: str, sql: str) -> str:
    """Run `sql` as a role, in its own connection; return PostgreSQL's refusal."""
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        with pytest.raises(psycopg.Error) as error:
            conn.execute(sql)
        conn.rollback()
    return str(error.value)


def test_the_application_role_appends_and_prunes_but_cannot_cut_the_chain(deployment):
    owner, app = deployment["owner"], deployment["app"]
    manage(owner, "migrate", "-v0")
    manage(owner, "dbgrants", "--role", deployment["app_role"], "--apply")

    manage(app, "createorg", "acme", "--name", "Acme", "--owner", "alice@example.com")
    token = manage(app, "createapikey", "--org", "acme", "--name", "ci").stdout.strip()
    assert token.startswith("kw_")
    assert "acme: ok" in manage(app, "verifyaudit").stdout

    # The review's three ways around the chain, as the application's role:
    assert "permission denied" in refused(
        app, "SET keyward.audit_prune = 'on'; DELETE FROM audit_auditevent"
    )
    assert "permission denied" in refused(
        app,
        "INSERT INTO audit_auditcheckpoint "
        "(organization_id, seq, hash, pruned_at, older_than, removed_count) "
        "SELECT id, 1, repeat('a', 64), now(), now(), 1 FROM orgs_organization",
    )
    assert "permission denied" in refused(app, "TRUNCATE audit_auditevent")
    # and the owner meets the triggers too (it could switch them off: it owns the tables)
    assert "TRUNCATE refused" in refused(owner, "TRUNCATE audit_auditevent CASCADE")
    assert "append-only" in refused(
        owner, "SET keyward.audit_prune = 'on'; UPDATE audit_auditevent SET action = 'x'"
    )

    # A prune through the application's code, in its own process: the function, owned by
    # the non-superuser owner, removes the events; the chain still verifies.
    manage(
        app, "shell", "-c",
        "from django.utils import timezone; from audit.services import audit_prune; "
        "from orgs.models import Organization; "
        "r = audit_prune(organization_id=Organization.objects.get(slug='acme').pk, "
        "older_than=timezone.now()); print('removed', r.removed)",
    )  # fmt: skip
    assert "acme: ok, 2 events" in manage(app, "verifyaudit").stdout

    # The function called on its own leaves a checkpoint without its audit.pruned event.
    with psycopg.connect(app.replace("postgres://", "postgresql://")) as conn:
        conn.execute(
            "SELECT audit_prune_through(id, now()) FROM orgs_organization WHERE slug = 'acme'"
        )
    result = manage(app, "verifyaudit", check=False)
    assert result.returncode == 1
    assert "no matching audit.pruned event" in result.stderr
