"""Real `python manage.py db_worker` processes on PostgreSQL: killed, doubled, and racing.

The workers share the test database with this process (the test's writes are committed);
the receiver is http.server in this process. PostgreSQL only: SQLite's single writer
makes the races these tests look for impossible to stage.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apikeys.models import APIKey
from events.jobs import JOBS, period_start
from events.models import Notice, WebhookAttempt, WebhookDelivery
from events.services import webhook_endpoint_test
from events.tasks import deliver_webhook, run_job
from events.tests.conftest import SYSTEM
from events.tests.receiver import Reply, verified

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.server,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("worker races need PostgreSQL (run with DATABASE_URL=postgres://…)")


class Workers:
    """Start `db_worker` processes against the test database; stop them all at the end."""

    def __init__(self, mail_dir: str) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.mail_dir = mail_dir

    def env(self) -> dict[str, str]:
        s = connection.settings_dict
        url = (
            f"postgres://{s.get('USER') or 'postgres'}"
            f"{':' + s['PASSWORD'] if s.get('PASSWORD') else ''}"
            f"@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"
        )
        drop = {"DATABASE_URL", "REDIS_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(
            DJANGO_SETTINGS_MODULE="events.tests.worker_settings",
            DATABASE_URL=url,
            DATABASE_POOL="0",
            KEYWARD_WEBHOOK_ALLOW_PRIVATE="1",
            KEYWARD_WEBHOOK_ALLOW_HTTP="1",
            KEYWARD_WEBHOOK_TIMEOUT="2",
            KEYWARD_SWEEP_SECONDS="1",
            KEYWARD_TEST_MAIL_DIR=self.mail_dir,
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, name: str) -> subprocess.Popen:
        log = Path(tempfile.mkstemp(prefix=f"kw_worker_{name}_")[1])
        command = [sys.executable, "manage.py", "db_worker", "--no-reload"]
        command += ["--interval", "0.2", "--no-startup-delay", "--worker-id", name]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=BASE_DIR, env=self.env(), stdout=out, stderr=subprocess.STDOUT
            )
        self.processes[name], self.logs[name] = process, log
        return process

    def output(self) -> str:
        return "\n".join(
            f"--- {name}\n{log.read_text(errors='replace')[-3000:]}"
            for name, log in self.logs.items()
        )

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in self.logs.values():
            log.unlink(missing_ok=True)


@pytest.fixture
def workers(loopback):
    with tempfile.TemporaryDirectory(prefix="kw_mail_") as mail_dir:
        running = Workers(mail_dir)
        try:
            yield running
        finally:
            running.stop_all()


def mailed(directory: str) -> list:
    """Return the messages Django's file email backend wrote into `directory`."""
    messages = []
    for file in Path(directory).iterdir():
        for chunk in file.read_text().split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk, policy=email.policy.default))
    return messages


def wait_until(predicate, timeout: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{workers.output()}")


def test_a_worker_killed_mid_delivery_leaves_it_delivered_with_the_same_webhook_id(
    org, make_endpoint, receiver, workers
):
    endpoint, secret = make_endpoint(org, receiver.url)
    hang = threading.Event()
    receiver.replies = [Reply(hang=hang)]  # the first attempt never gets its answer
    first = workers.start("first")
    try:
        delivery = webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
        assert receiver.arrived.wait(60), workers.output()
        first.send_signal(signal.SIGKILL)  # in the middle of the delivery
        first.wait(timeout=10)
    finally:
        hang.set()
    assert WebhookDelivery.objects.get(pk=delivery.pk).state == "pending"
    workers.start("second")
    wait_until(
        lambda: WebhookDelivery.objects.get(pk=delivery.pk).state == "delivered",
        60,
        "the second worker to deliver",
        workers,
    )
    received = receiver.wait_for(2)
    assert len(received) == 2
    assert (
        received[0].headers["webhook-id"] == received[1].headers["webhook-id"] == delivery.event_id
    )
    for request in received:
        assert verified(request, secret)["type"] == "webhook.test"
    attempts = list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "outcome")
    )
    assert attempts == [(1, "interrupted"), (2, "delivered")]


def test_two_workers_never_send_the_same_attempt_twice(org, make_endpoint, receiver, workers):
    endpoint, secret = make_endpoint(org, receiver.url)
    seen: Counter[str] = Counter()

    def first_fails(request, _all):
        # Each event fails once, then succeeds: every delivery needs exactly two attempts.
        seen[request.headers["webhook-id"]] += 1
        return Reply(500) if seen[request.headers["webhook-id"]] == 1 else Reply(200, delay=0.05)

    receiver.respond = first_fails
    deliveries = [webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM) for _ in range(25)]
    # Every delivery queued three times over: the claims, not the queue, must keep it single.
    for delivery in deliveries:
        deliver_webhook.enqueue(delivery.pk)
        deliver_webhook.enqueue(delivery.pk)
    WebhookDelivery.objects.update(manual=False)  # give them the retry schedule
    workers.start("one")
    workers.start("two")
    wait_until(
        lambda: WebhookDelivery.objects.filter(state="delivered").count() == len(deliveries),
        90,
        "every delivery to succeed",
        workers,
    )
    received = receiver.wait_for(2 * len(deliveries))
    time.sleep(1)  # anything extra would arrive now
    per_id = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert sorted(per_id) == sorted(d.event_id for d in deliveries)
    assert set(per_id.values()) == {2}, per_id
    for request in received:
        verified(request, secret)
    assert WebhookAttempt.objects.count() == 2 * len(deliveries)
    assert not WebhookAttempt.objects.exclude(outcome__in=["delivered", "failed"]).exists()
    from django_tasks_db.models import DBTaskResult

    workers_seen = {
        worker
        for ids in DBTaskResult.objects.filter(
            task_path="events.tasks.deliver_webhook"
        ).values_list("worker_ids", flat=True)
        for worker in ids
    }
    assert workers_seen == {"one", "two"}, "both workers took deliveries"


def test_notices_are_sent_once_per_key_and_threshold_with_two_workers(org, make_key, workers):
    now = timezone.now()
    keys = []
    for n in range(8):
        key, _ = make_key(org, name=f"Expiring {n}")
        keys.append(key)
    APIKey.objects.filter(pk__in=[k.pk for k in keys]).update(
        created_at=now - timedelta(days=30), expires_at=now + timedelta(days=6)
    )
    start = period_start(JOBS["key_notices"], now).isoformat()
    for _ in range(12):  # many runs of the job at once, on both workers
        run_job.enqueue("key_notices", start)
    workers.start("one")
    workers.start("two")
    wait_until(
        lambda: Notice.objects.filter(state="sent").count() == len(keys),
        60,
        "the notices to be sent",
        workers,
    )
    time.sleep(2)
    assert Notice.objects.count() == len(keys)
    subjects = [message["Subject"] for message in mailed(workers.mail_dir)]
    assert len(subjects) == len(keys), subjects
    assert sorted(subjects) == sorted(set(subjects))  # each key's notice once
    assert all(any(f"Expiring {n}" in s for s in subjects) for n in range(len(keys)))
    # Both workers' schedulers ran all along: each periodic job was queued once per period.
    from django_tasks_db.models import DBTaskResult

    queued = Counter(
        tuple(args_kwargs["args"])
        for args_kwargs in DBTaskResult.objects.filter(task_path="events.tasks.run_job")
        .exclude(args_kwargs__args=["key_notices", start])
        .values_list("args_kwargs", flat=True)
    )
    assert queued and set(queued.values()) == {1}, queued
    assert {job for job, _period in queued} >= {"sweep", "invalid_key_spike", "prune"}
