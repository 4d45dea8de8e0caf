"""The PostgreSQL privileges of the role the application runs as (docs/README-database-roles.md).

Two roles: an owner role that owns the tables, runs `migrate` and owns the prune
function; and an application role that serves requests. The application role may
read and write every table, but may only add to the audit log: no UPDATE, DELETE
or TRUNCATE on events, no write at all on checkpoints. Old events leave only through
`audit_prune_through()`, a SECURITY DEFINER function that runs as the owner.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

PRUNE_FUNCTION = "audit_prune_through(bigint, timestamp with time zone)"


def application_role_grants(
    *, connection: BaseDatabaseWrapper, role: str, may_prune: bool = True
) -> list[str]:
    """Return the statements, run as the owner role, that give `role` what the application needs.

    With `may_prune` the role may run `pruneaudit` (through the prune function only);
    without it, pruning needs the owner role, and the application cannot remove any event.
    """
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = qn(cursor.fetchone()[0])
    grantee = qn(role)
    statements = [
        f"GRANT USAGE ON SCHEMA {schema} TO {grantee}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {grantee}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {grantee}",
        # Tables later migrations create get the same, once this ran as the owner role.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {grantee}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {grantee}",
        # The audit log: append only, and checkpoints are written by the prune function.
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.audit_auditevent FROM {grantee}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.audit_auditcheckpoint FROM {grantee}",
    ]
    prune = f"EXECUTE ON FUNCTION {schema}.{PRUNE_FUNCTION}"
    if may_prune:
        statements.append(f"GRANT {prune} TO {grantee}")
    else:
        statements.append(f"REVOKE {prune} FROM {grantee}")
    return statements
