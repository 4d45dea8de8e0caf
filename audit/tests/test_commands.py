"""verifyaudit names the first event that does not match; pruneaudit keeps chains verifiable."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from audit import services
from audit.actors import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_record
from audit.tests.conftest import as_database_owner


def record(org, action="test.happened", **fields):
    with transaction.atomic():
        return audit_record(
            organization_id=org.pk, action=action, actor=Actor.system("test"), **fields
        )


def verify(*args):
    out, err = StringIO(), StringIO()
    call_command("verifyaudit", *args, stdout=out, stderr=err)
    return out.getvalue()


def tamper(sql: str, params: list) -> None:
    """Rewrite rows behind the application's back, as someone with database access could."""
    with as_database_owner(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Only a superuser can do this: it switches off the append-only trigger.
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.fixture
def two_orgs(make_org):
    acme, globex = make_org("acme"), make_org("globex")
    for org in (acme, globex):
        for n in range(4):
            record(org, action=f"test.step{n}")
    return acme, globex


def test_verifyaudit_passes_intact_chains_and_prints_their_heads(two_orgs):
    acme, _globex = two_orgs
    out = verify()
    head = AuditEvent.objects.filter(organization=acme).order_by("-seq").first()
    assert f"acme: ok, {head.seq} events, head #{head.seq} {head.hash}" in out
    assert "globex: ok" in out


def test_verifyaudit_names_the_organisation_and_event_of_a_tampered_row(two_orgs):
    acme, _globex = two_orgs
    victim = AuditEvent.objects.get(organization=acme, action="test.step2")
    tamper("UPDATE audit_auditevent SET actor_label = 'mallory' WHERE id = %s", [victim.pk])
    with pytest.raises(CommandError) as error:
        verify()
    message = str(error.value)
    assert error.value.returncode == 1
    assert f"acme: BROKEN at event id {victim.pk} (seq {victim.seq}" in message
    assert "hash does not match" in message
    assert "globex" not in message
    verify("--org", "globex")  # the other chain still holds


def test_verifyaudit_sees_a_rewritten_hash_at_the_next_event(two_orgs):
    acme, _globex = two_orgs
    victim = AuditEvent.objects.get(organization=acme, action="test.step1")
    victim.actor_label = "mallory"
    forged = victim.compute_hash()
    tamper(
        "UPDATE audit_auditevent SET actor_label = 'mallory', hash = %s WHERE id = %s",
        [forged, victim.pk],
    )
    with pytest.raises(CommandError, match=rf"seq {victim.seq + 1}, test.step2\): prev_hash"):
        verify("--org", "acme")


def test_verifyaudit_sees_a_deleted_event(two_orgs):
    acme, _globex = two_orgs
    victim = AuditEvent.objects.get(organization=acme, action="test.step1")
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    with pytest.raises(CommandError, match=rf"seq is {victim.seq + 1}, expected {victim.seq}"):
        verify("--org", "acme")


def test_verifyaudit_refuses_an_unknown_organisation(two_orgs):
    with pytest.raises(CommandError, match="No organisation with slug 'nope'") as error:
        verify("--org", "nope")
    assert error.value.returncode == 2


def _age(monkeypatch, days: int):
    moment = timezone.now() - timedelta(days=days)
    monkeypatch.setattr(services, "_now", lambda: moment)


def test_pruneaudit_removes_old_events_and_verification_still_holds(make_org, monkeypatch):
    _age(monkeypatch, 400)
    org = make_org("acme")
    old = [record(org, action="test.old") for _ in range(3)]
    monkeypatch.undo()
    recent = [record(org, action="test.recent") for _ in range(2)]
    out = StringIO()
    call_command("pruneaudit", "--older-than", "365d", stdout=out)
    remaining = list(AuditEvent.objects.filter(organization=org).order_by("seq"))
    assert [e.action for e in remaining] == ["test.recent", "test.recent", "audit.pruned"]
    checkpoint = AuditCheckpoint.objects.get(organization=org)
    assert (checkpoint.seq, checkpoint.hash) == (old[-1].seq, old[-1].hash)
    assert checkpoint.removed_count == old[-1].seq  # the organisation's first events too
    assert remaining[0].prev_hash == checkpoint.hash
    assert f"acme: removed {old[-1].seq} events through #{old[-1].seq}" in out.getvalue()
    pruned = remaining[-1]
    assert pruned.changes["through_seq"]["after"] == old[-1].seq
    assert pruned.actor_type == "system"
    assert "acme: ok, 3 events" in verify("--org", "acme")
    # and tampering after a prune is still caught
    tamper("UPDATE audit_auditevent SET actor_label = 'mallory' WHERE id = %s", [recent[0].pk])
    with pytest.raises(CommandError, match=f"seq {recent[0].seq}"):
        verify("--org", "acme")


def test_pruneaudit_keeps_the_newest_event_so_the_chain_goes_on(make_org, monkeypatch):
    _age(monkeypatch, 800)
    org = make_org("quiet")
    record(org, action="test.old")
    head = record(org, action="test.last")
    monkeypatch.undo()
    call_command("pruneaudit", "--older-than", "365d", "--org", "quiet", stdout=StringIO())
    actions = list(
        AuditEvent.objects.filter(organization=org).order_by("seq").values_list("action", flat=True)
    )
    assert actions == ["test.last", "audit.pruned"]
    assert AuditEvent.objects.get(organization=org, action="audit.pruned").prev_hash == head.hash
    record(org, action="test.after")
    assert "quiet: ok, 3 events" in verify("--org", "quiet")


def test_pruneaudit_twice_starts_from_the_latest_checkpoint(make_org, monkeypatch):
    _age(monkeypatch, 900)
    org = make_org("twice")
    record(org, action="test.ancient")
    monkeypatch.undo()
    _age(monkeypatch, 500)
    record(org, action="test.old")
    monkeypatch.undo()
    record(org, action="test.now")
    call_command("pruneaudit", "--older-than", "700d", stdout=StringIO())
    call_command("pruneaudit", "--older-than", "365d", stdout=StringIO())
    assert AuditCheckpoint.objects.filter(organization=org).count() == 2
    assert not AuditEvent.objects.filter(organization=org, action__in=["test.ancient", "test.old"])
    verify("--org", "twice")


def test_pruneaudit_with_nothing_old_removes_nothing(two_orgs):
    before = AuditEvent.objects.count()
    call_command("pruneaudit", "--older-than", "1d", stdout=StringIO())
    assert AuditEvent.objects.count() == before
    assert not AuditCheckpoint.objects.exists()


@pytest.mark.parametrize("age", ["365", "1y", "0d", "-3d", "d"])
def test_pruneaudit_refuses_a_bad_age(two_orgs, age):
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="--older-than") as error:
        call_command("pruneaudit", f"--older-than={age}", stdout=StringIO())
    assert error.value.returncode == 2
    assert AuditEvent.objects.count() == before
