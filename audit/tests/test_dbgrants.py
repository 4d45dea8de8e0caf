"""`manage.py dbgrants` prints the documented grants of the application's role."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection


def test_dbgrants_gives_everything_but_changing_the_audit_log():
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError) as error:
            call_command("dbgrants", "--role", "keyward_app", stdout=StringIO())
        assert error.value.returncode == 2
        return
    out = StringIO()
    call_command("dbgrants", "--role", "keyward_app", stdout=out)
    sql = out.getvalue()
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public"' in sql
    assert 'REVOKE UPDATE, DELETE, TRUNCATE ON "public".audit_auditevent FROM "keyward_app"' in sql
    assert "audit_auditcheckpoint FROM" in sql
    assert 'GRANT EXECUTE ON FUNCTION "public".audit_prune_through(' in sql
    strict = StringIO()
    call_command("dbgrants", "--role", "keyward_app", "--no-prune", stdout=strict)
    assert 'REVOKE EXECUTE ON FUNCTION "public".audit_prune_through(' in strict.getvalue()
