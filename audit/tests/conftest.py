"""On PostgreSQL the audit tests run the application as a non-superuser role.

The role gets exactly the grants docs/README-database-roles.md prescribes
(`manage.py dbgrants`), so these tests show what the application's own role can and
cannot do to the audit log. The tables stay owned by the role that migrated them.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection

from audit.roles import application_role_grants


def _role_name() -> str:
    database = connection.settings_dict["NAME"]
    return f"{database.removeprefix('test_')}_test_app"[:63]


@pytest.fixture(scope="session")
def application_role(django_db_setup, django_db_blocker):
    """Create the application's non-superuser role for this test database; drop it after."""
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            yield None
            return
        role = _role_name()
        quoted = connection.ops.quote_name(role)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                cursor.execute(
                    f"CREATE ROLE {quoted} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOBYPASSRLS NOINHERIT"
                )
            for statement in application_role_grants(connection=connection, role=role):
                cursor.execute(statement)
    yield role
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {quoted}")
        cursor.execute(f"DROP ROLE {quoted}")


@pytest.fixture(autouse=True)
def as_application_role(db, application_role):
    """Run the test's database work as the application role (PostgreSQL only)."""
    if application_role is None:
        yield None
        return
    quoted = connection.ops.quote_name(application_role)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {quoted}")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False,)
    yield application_role
    if connection.connection is not None and not connection.needs_rollback:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


@contextmanager
def as_database_owner():
    """Step out of the application role, as someone with the owner's rights would."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (role,) = cursor.fetchone()
        cursor.execute("RESET ROLE")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {connection.ops.quote_name(role)}")
