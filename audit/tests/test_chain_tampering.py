"""What the application's own database role cannot do to the audit chain, and what verifyaudit sees.

On PostgreSQL every test here runs as the non-superuser application role
(audit/tests/conftest.py); `as_database_owner()` steps out of it where a test
plays someone holding the owner's or a superuser's rights.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import services
from audit.actors import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit_record
from audit.tests.conftest import as_database_owner
from orgs.models import Organization

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="roles and triggers are PostgreSQL's"
)


def record(org, action="test.happened", **fields):
    with transaction.atomic():
        return audit_record(
            organization_id=org.pk, action=action, actor=Actor.system("test"), **fields
        )


def verify(*args) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verifyaudit", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def execute(sql: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def as_superuser_behind_the_triggers(sql: str, params: list) -> None:
    """Rewrite rows the way only a superuser can: with every trigger switched off."""
    with as_database_owner(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.fixture
def old_chain(make_org, monkeypatch):
    """An organisation with ten events from a month ago and two from today."""
    month_ago = timezone.now() - timedelta(days=30)
    monkeypatch.setattr(services, "_now", lambda: month_ago)
    org = make_org("acme")  # org.created, a month ago
    for n in range(9):
        record(org, action=f"test.old{n}")
    monkeypatch.undo()
    record(org, action="test.recent")
    record(org, action="test.latest")
    return org


# --- (a) pruning cannot be switched on by an ordinary session ---------------------------


@postgres_only
def test_the_prune_setting_does_not_open_the_trigger_to_the_application_role(
    old_chain, application_role
):
    event = AuditEvent.objects.filter(organization=old_chain).order_by("seq").first()
    # Even a role that was granted DELETE on the table is refused.
    grantee = connection.ops.quote_name(application_role)
    with as_database_owner():
        execute(f"GRANT DELETE ON audit_auditevent TO {grantee}")
    with pytest.raises(DatabaseError, match="append-only"):
        execute(
            "SET LOCAL keyward.audit_prune = 'on'; DELETE FROM audit_auditevent WHERE id = %s",
            [event.pk],
        )
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@postgres_only
def test_the_application_role_cannot_write_checkpoints(old_chain):
    with pytest.raises(DatabaseError, match="permission denied"):
        execute(
            "INSERT INTO audit_auditcheckpoint "
            "(organization_id, seq, hash, pruned_at, older_than, removed_count) "
            "VALUES (%s, 5, %s, now(), now(), 5)",
            [old_chain.pk, "a" * 64],
        )


def test_pruning_as_the_application_role_keeps_the_chain_verifiable(old_chain):
    last_old = AuditEvent.objects.get(organization=old_chain, action="test.old8")
    result = services.audit_prune(
        organization_id=old_chain.pk, older_than=timezone.now() - timedelta(days=1)
    )
    assert result.removed == last_old.seq  # the organisation's first events and the old ones
    assert (result.checkpoint.seq, result.checkpoint.hash) == (last_old.seq, last_old.hash)
    pruned = AuditEvent.objects.get(organization=old_chain, action="audit.pruned")
    assert pruned.changes["through_seq"]["after"] == last_old.seq
    assert pruned.changes["through_hash"]["after"] == result.checkpoint.hash
    assert audit_chain_verify(organization=old_chain).holds
    assert verify("--org", "acme")[0] == 0


@postgres_only
def test_the_prune_function_alone_leaves_a_checkpoint_verifyaudit_refuses(old_chain):
    """Calling the function without recording audit.pruned is not a prune anyone can hide."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT audit_prune_through(%s, %s)",
            [old_chain.pk, timezone.now() - timedelta(days=1)],
        )
    code, output = verify("--org", "acme")
    assert code == 1
    assert "no matching audit.pruned event" in output


# --- (b) a checkpoint is valid only with its prune --------------------------------------


@postgres_only
def test_a_forged_checkpoint_does_not_hide_a_rewritten_event(old_chain):
    """The review's attack: a checkpoint at seq 8, then an event below it replaced."""
    head = AuditEvent.objects.filter(organization=old_chain).order_by("-seq").first()
    victim = AuditEvent.objects.get(organization=old_chain, seq=5)
    with as_database_owner():
        AuditCheckpoint.objects.create(
            organization=old_chain,
            seq=8,
            hash=AuditEvent.objects.get(organization=old_chain, seq=8).hash,
            older_than=timezone.now(),
            removed_count=8,
        )
    as_superuser_behind_the_triggers(
        "UPDATE audit_auditevent SET action = 'test.nothing_to_see' WHERE id = %s", [victim.pk]
    )
    code, output = verify("--org", "acme")
    assert code == 1
    assert "at or below the checkpoint" in output
    assert head.hash not in output.split("BROKEN")[0]  # no "ok" line with the old head


@postgres_only
def test_a_checkpoint_without_its_prune_event_is_refused(old_chain):
    """Events cut off below a checkpoint, but no audit.pruned event says so."""
    eighth = AuditEvent.objects.get(organization=old_chain, seq=8)
    with as_database_owner():
        AuditCheckpoint.objects.create(
            organization=old_chain,
            seq=8,
            hash=eighth.hash,
            older_than=timezone.now(),
            removed_count=8,
        )
    as_superuser_behind_the_triggers(
        "DELETE FROM audit_auditevent WHERE organization_id = %s AND seq <= 8", [old_chain.pk]
    )
    code, output = verify("--org", "acme")
    assert code == 1
    assert "no matching audit.pruned event" in output


def test_a_prune_event_that_does_not_match_its_checkpoint_is_refused(old_chain):
    cutoff = timezone.now() - timedelta(days=1)
    services.audit_prune(organization_id=old_chain.pk, older_than=cutoff)
    checkpoint = AuditCheckpoint.objects.get(organization=old_chain)
    with as_database_owner():
        AuditCheckpoint.objects.create(
            organization=old_chain,
            seq=checkpoint.seq + 1,
            hash=AuditEvent.objects.get(organization=old_chain, seq=checkpoint.seq + 1).hash,
            older_than=timezone.now(),
            removed_count=checkpoint.removed_count,
        )
    code, output = verify("--org", "acme")
    assert code == 1


# --- (c) truncation, and organisations without events ------------------------------------


@postgres_only
@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditcheckpoint"])
def test_truncate_is_refused_even_to_the_owner(old_chain, table):
    before = AuditEvent.objects.filter(organization=old_chain).count()
    with as_database_owner(), pytest.raises(DatabaseError, match="TRUNCATE refused"):
        execute(f"SET CONSTRAINTS ALL IMMEDIATE; TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.filter(organization=old_chain).count() == before


def test_verifyaudit_fails_for_an_organisation_without_events(old_chain):
    Organization.objects.create(name="Emptied", slug="emptied")  # no org.created event
    code, output = verify()
    assert code == 1
    assert "emptied: BROKEN" in output and "no events" in output
    assert "acme: ok" in output
    assert not audit_chain_verify(organization=Organization.objects.get(slug="emptied")).holds
