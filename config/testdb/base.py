"""Django's PostgreSQL backend, except that flushing the test database passes the audit triggers.

The audit tables refuse TRUNCATE (audit/migrations/0006_prune_function_and_truncate.py),
and Django empties the database with one TRUNCATE after every transactional test.
The suite connects as a superuser, which may run that TRUNCATE in replica mode, where
no ordinary trigger fires. Production uses Django's backend unchanged.
"""

from __future__ import annotations

from django.db.backends.postgresql import base


class DatabaseOperations(base.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if not statements:
            return statements
        # execute_sql_flush runs these in one transaction, so SET LOCAL ends with it.
        return ["SET LOCAL session_replication_role = replica", *statements]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
