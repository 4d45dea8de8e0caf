"""The hash chain: one unbroken line per organisation, even under concurrent writers."""

from __future__ import annotations

import itertools
import threading
from contextlib import nullcontext
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from apikeys.services import api_key_create, api_key_revoke
from audit import services
from audit.actors import Actor, Target
from audit.models import AppendOnlyError, AuditCheckpoint, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit_record
from audit.tests.conftest import as_database_owner


def record(org, action="test.happened", **fields):
    with transaction.atomic():
        return audit_record(
            organization_id=org.pk, action=action, actor=Actor.system("test"), **fields
        )


def test_each_event_links_to_the_one_before(org):
    first_seq = AuditEvent.objects.filter(organization=org).count()
    a = record(org)
    b = record(org, target=Target("thing", "t1", "Thing one"))
    assert (a.seq, b.seq) == (first_seq + 1, first_seq + 2)
    assert b.prev_hash == a.hash
    assert b.hash == b.compute_hash()
    assert audit_chain_verify(organization=org).holds


def test_time_never_runs_backward_along_a_chain(org, monkeypatch):
    latest = record(org)
    monkeypatch.setattr(services, "_now", lambda: latest.occurred_at - timedelta(minutes=5))
    stepped_back = record(org, action="test.clock_stepped_back")
    assert stepped_back.occurred_at == latest.occurred_at
    assert audit_chain_verify(organization=org).holds


def test_organisations_have_separate_chains(make_org):
    one, two = make_org(), make_org()
    record(one)
    record(two)
    for org in (one, two):
        seqs = list(
            AuditEvent.objects.filter(organization=org)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert seqs == list(range(1, len(seqs) + 1))
        first = AuditEvent.objects.get(organization=org, seq=1)
        assert first.prev_hash == AuditEvent.GENESIS_HASH


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(org):
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError):
        audit_record(organization_id=org.pk, action="test.loose", actor=None)
    assert AuditEvent.objects.count() == before


def test_a_rolled_back_change_leaves_no_event(org):
    before = AuditEvent.objects.filter(organization=org).count()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        record(org, action="test.doomed")
        1 / 0  # noqa: B018
    assert AuditEvent.objects.filter(organization=org).count() == before
    assert not AuditEvent.objects.filter(action="test.doomed").exists()


def test_the_model_refuses_to_change_or_delete_an_event(org):
    event = record(org)
    event.action = "test.rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.action == "test.happened"


def test_checkpoints_cannot_be_changed_or_deleted(org):
    with as_database_owner():  # only the prune function writes checkpoints on PostgreSQL
        checkpoint = AuditCheckpoint.objects.create(
            organization=org, seq=1, hash="a" * 64, older_than=org.created_at, removed_count=1
        )
    checkpoint.seq = 5
    with pytest.raises(AppendOnlyError):
        checkpoint.save()
    with pytest.raises(AppendOnlyError):
        checkpoint.delete()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'test.rewritten' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_postgres_refuses_raw_update_and_delete(org, statement):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    event = record(org)
    # The application's role holds no such privilege; the owner meets the trigger.
    for refusal, role in (
        ("permission denied", nullcontext()),
        ("append-only", as_database_owner()),
    ):
        with (
            role,
            pytest.raises(DatabaseError, match=refusal),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.action == "test.happened"


def test_postgres_refuses_raw_changes_to_checkpoints(org):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    with as_database_owner():
        checkpoint = AuditCheckpoint.objects.create(
            organization=org, seq=1, hash="a" * 64, older_than=org.created_at, removed_count=1
        )
    for statement in (
        "UPDATE audit_auditcheckpoint SET seq = 7 WHERE id = %s",
        "DELETE FROM audit_auditcheckpoint WHERE id = %s",
    ):
        with (
            as_database_owner(),
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [checkpoint.pk])
    checkpoint.refresh_from_db()
    assert checkpoint.seq == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_in_one_organisation_make_one_unbroken_chain(make_org):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are a PostgreSQL matter; SQLite serialises every write")
    org = make_org("busy")
    threads_count, per_thread = 6, 8
    barrier = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def write(index: int) -> None:
        try:
            barrier.wait()
            for n in range(per_thread):
                if n % 4 == 0:
                    # a real service in the mix: a key created, then revoked
                    key, _token = api_key_create(
                        organization=org,
                        actor=Actor.system(f"writer {index}"),
                        name=f"k{index}-{n}",
                    )
                    api_key_revoke(key=key, actor=Actor.system(f"writer {index}"))
                else:
                    record(org, action=f"test.writer{index}")
        except BaseException as exc:  # surfaced below, in the test's own thread
            failures.append(exc)
        finally:
            connection.close()

    before = AuditEvent.objects.filter(organization=org).count()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    events = list(AuditEvent.objects.filter(organization=org).order_by("seq"))
    # two service events (created, revoked) for every 4th write, one event for the others
    service_writes = len(range(0, per_thread, 4))
    expected = before + threads_count * (per_thread - service_writes + 2 * service_writes)
    assert len(events) == expected
    assert [e.seq for e in events] == list(range(1, expected + 1))
    for previous, event in itertools.pairwise(events):
        assert event.prev_hash == previous.hash
    report = audit_chain_verify(organization=org)
    assert report.holds, report.reason
    assert report.checked == expected
