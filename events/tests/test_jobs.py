"""Periodic jobs: claimed once per period; the sweep recovers what a dead worker dropped."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from apikeys.services import api_key_revoke
from events import jobs
from events.delivery import deliverer
from events.models import Event, JobRun, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.scheduler import Scheduler
from events.tests.conftest import SYSTEM
from events.tests.receiver import verified

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_period_is_claimed_by_exactly_one_of_many_claimants():
    if connection.vendor != "postgresql":
        pytest.skip("a race of claimants is PostgreSQL's; SQLite serialises every write")
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    results = []

    def claim():
        try:
            results.append(jobs.job_claim(job="sweep", start=start, worker="t"))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert JobRun.objects.filter(job="sweep", period_start=start).count() == 1


def test_schedulers_queue_each_job_once_per_period_and_again_the_next(settings):
    first, second = Scheduler("a"), Scheduler("b")
    queued = first.run_once() + second.run_once()
    assert sorted(queued) == sorted(jobs.JOBS)
    assert DBTaskResult.objects.filter(task_path="events.tasks.run_job").count() == len(jobs.JOBS)
    # A new period (here: a shorter sweep period makes one begin) is claimed again.
    JobRun.objects.filter(job="sweep").update(period_start=timezone.now() - timedelta(days=1))
    assert first.run_once() + second.run_once() == ["sweep"]


def test_period_starts_are_shared_by_every_worker_clock():
    job = jobs.JOBS["key_notices"]
    now = datetime(2030, 1, 1, 12, 0, 59, tzinfo=UTC)
    assert jobs.period_start(job, now) == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert jobs.period_start(job, now + timedelta(seconds=1)) == datetime(
        2030, 1, 1, 12, 1, tzinfo=UTC
    )


def test_a_job_run_records_its_result(drain):
    Scheduler("a").run_once()
    drain()
    assert JobRun.objects.filter(finished_at__isnull=False).count() == len(jobs.JOBS)
    assert JobRun.objects.get(job="sweep").result == {"events": 0, "deliveries": 0, "notices": 0}


def _backdate_events() -> None:
    """Make the events a few seconds old, as the sweep expects of what it picks up."""
    WebhookEndpoint.objects.update(created_at=timezone.now() - timedelta(seconds=10))
    Event.objects.update(created_at=timezone.now() - timedelta(seconds=5))


def test_the_sweep_sends_an_event_whose_enqueue_was_lost(
    org, make_key, make_endpoint, receiver, drain, settings
):
    settings.KEYWARD_SWEEP_SECONDS = 1
    _, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    # The process died between its commit and its enqueue: the queue never heard of it.
    DBTaskResult.objects.all().delete()
    _backdate_events()
    assert jobs.sweep()["events"] == 3  # the owner joining, the key made, the key revoked
    assert jobs.sweep()["events"] == 0  # not queued twice in a row
    drain()
    [request] = receiver.wait_for(1)
    assert verified(request, secret)["data"]["key"]["id"] == key.id


def test_the_sweep_retries_a_delivery_whose_worker_died_with_the_same_webhook_id(
    org, make_key, make_endpoint, receiver, drain, settings
):
    settings.KEYWARD_SWEEP_SECONDS = 1
    _, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    DBTaskResult.objects.filter(task_path="events.tasks.dispatch_event").delete()
    jobs.sweep()
    _backdate_events()
    jobs.sweep()
    drain(max_rounds=1)  # dispatch, deliver...
    delivery = WebhookDelivery.objects.get()
    receiver.received.clear()
    # ...then a worker takes the next attempt and dies before it records anything.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state="pending", next_attempt_at=timezone.now() - timedelta(seconds=10)
    )
    claimed = deliverer.claim(delivery.pk)
    assert claimed.attempt.number == 2
    DBTaskResult.objects.all().delete()
    assert jobs.sweep()["deliveries"] == 0  # still leased: its worker might be alive
    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now())
    assert jobs.sweep()["deliveries"] == 1
    drain()
    [request] = receiver.wait_for(1)
    assert request.headers["webhook-id"] == delivery.event_id
    verified(request, secret)
    outcomes = list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "outcome")
    )
    assert outcomes == [(1, "delivered"), (2, "interrupted"), (3, "delivered")]


def test_prune_forgets_attempts_after_thirty_days(org, make_endpoint, receiver, drain):
    from events.services import webhook_endpoint_test

    endpoint, _ = make_endpoint(org, receiver.url)
    old = webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    new = webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    drain()
    month_ago = timezone.now() - timedelta(days=31)
    WebhookAttempt.objects.filter(delivery=old).update(started_at=month_ago)
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=month_ago)
    Event.objects.filter(pk=old.event_id).update(created_at=month_ago)
    removed = jobs.prune()
    assert removed["attempts"] == 1 and removed["deliveries"] == 1
    assert removed["events"] == 1  # a test event, once its delivery is gone
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [new.pk]
    assert WebhookAttempt.objects.filter(delivery=new).count() == 1
