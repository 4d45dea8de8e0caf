"""On PostgreSQL, only a SECURITY DEFINER function may remove audit events, and TRUNCATE is refused.

Before this, the append-only trigger let a DELETE through whenever the session had
set `keyward.audit_prune = 'on'`, which any session may do. Now the DELETE must also
run as the table's owner: that is `audit_prune_through()`, a SECURITY DEFINER function
owned by the role that ran this migration. The application's role (which should not
be the owner, see docs/README-database-roles.md) can only call the function, and the
function removes only a whole prefix of old events, never the newest, and writes the
checkpoint with the hash it read itself. EXECUTE is revoked from PUBLIC; `manage.py
dbgrants` grants it to the application role.

BEFORE TRUNCATE triggers refuse truncating the events and the checkpoints: TRUNCATE
fires no row trigger, so it went around the append-only one.
"""

from django.db import migrations

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    -- Only audit_prune_through() passes: it runs as the table's owner and sets the
    -- setting for its own DELETE. Any other role is refused whatever it sets.
    IF TG_OP = 'DELETE'
       AND current_setting('keyward.audit_prune', true) = 'on'
       AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID)
    THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

OLD_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('keyward.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

# {schema} is the quoted schema the tables live in: a SECURITY DEFINER function must
# not resolve names through a search_path its caller controls.
PRUNE = """
CREATE OR REPLACE FUNCTION audit_prune_through(p_organization_id bigint, p_older_than timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = {schema}, pg_temp
AS $$
DECLARE
    v_head bigint;
    v_through_seq bigint;
    v_through_hash varchar(64);
    v_removed bigint;
    v_checkpoint bigint;
BEGIN
    PERFORM 1 FROM orgs_organization WHERE id = p_organization_id FOR UPDATE;
    SELECT max(seq) INTO v_head FROM audit_auditevent WHERE organization_id = p_organization_id;
    SELECT seq, hash INTO v_through_seq, v_through_hash
        FROM audit_auditevent
        WHERE organization_id = p_organization_id
          AND occurred_at < p_older_than
          AND seq < v_head
        ORDER BY seq DESC
        LIMIT 1;
    IF v_through_seq IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('keyward.audit_prune', 'on', true);
    DELETE FROM audit_auditevent
        WHERE organization_id = p_organization_id AND seq <= v_through_seq;
    GET DIAGNOSTICS v_removed = ROW_COUNT;
    PERFORM set_config('keyward.audit_prune', 'off', true);
    INSERT INTO audit_auditcheckpoint
        (organization_id, seq, hash, pruned_at, older_than, removed_count)
        VALUES (p_organization_id, v_through_seq, v_through_hash, now(), p_older_than, v_removed)
        RETURNING id INTO v_checkpoint;
    RETURN v_checkpoint;
END;
$$;

REVOKE ALL ON FUNCTION audit_prune_through(bigint, timestamptz) FROM PUBLIC;
"""

NO_TRUNCATE = """
CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
CREATE TRIGGER audit_auditevent_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_truncate ON audit_auditcheckpoint;
CREATE TRIGGER audit_auditcheckpoint_no_truncate
    BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_truncate ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_refuse_truncate();
DROP FUNCTION IF EXISTS audit_prune_through(bigint, timestamptz);
"""


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
        # No parameters: the % in RAISE stays literal.
        cursor.execute(APPEND_ONLY)
        cursor.execute(PRUNE.replace("{schema}", schema))
        cursor.execute(NO_TRUNCATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(DROP)
        cursor.execute(OLD_APPEND_ONLY)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_action_prefix_index")]

    operations = [migrations.RunPython(forwards, backwards)]
