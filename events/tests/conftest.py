"""Fixtures of the events tests: a real receiver, the worker run in-process, endpoints."""

from __future__ import annotations

import pytest
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from audit.actors import Actor
from events.delivery import deliverer
from events.refusals import tally
from events.services import webhook_endpoint_create
from events.tests.receiver import Receiver

SYSTEM = Actor.system("test")


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def loopback(settings):
    """Let webhooks reach the loopback receiver over http, as development does."""
    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True
    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    settings.KEYWARD_WEBHOOK_TIMEOUT = 3.0
    return settings


@pytest.fixture
def quick_retries(monkeypatch):
    """Make every retry due at once, so that a test need not wait for the schedule."""
    from datetime import timedelta

    monkeypatch.setattr(deliverer, "retry_delays", (timedelta(0),) * 9)


def run_worker(max_rounds: int = 20) -> int:
    """Run the framework's own worker loop in this process until no task is ready."""
    ran = 0
    for _ in range(max_rounds):
        ready = DBTaskResult.objects.ready().count()
        if not ready:
            break
        worker = Worker(
            queue_names=["default"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id="in-process-test-worker",
            excluded_queue_names=[],
        )
        worker.run()
        ran += ready
    return ran


@pytest.fixture
def drain():
    return run_worker


@pytest.fixture
def make_endpoint(loopback):
    def make(organization, url, **fields):
        fields.setdefault("actor", SYSTEM)
        return webhook_endpoint_create(organization=organization, url=url, **fields)

    return make


@pytest.fixture(autouse=True)
def _clean_tally():
    tally.discard()
    yield
    tally.discard()
