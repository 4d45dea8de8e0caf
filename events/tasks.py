"""The background tasks, run by `python manage.py db_worker` (django-tasks, database backend).

The framework runs a task once and keeps no schedule, retry or recovery of its own;
each task here therefore starts from the rows (events/delivery.py, events/notices.py)
and is safe to run twice: the second run finds nothing left to do.
"""

from __future__ import annotations

from datetime import datetime

from django_tasks import task

from events import delivery, jobs, notices


@task()
def dispatch_event(event_id: str) -> list[str]:
    """Create the event's deliveries to every subscribed endpoint."""
    return delivery.event_dispatch(event_id=event_id)


@task()
def deliver_webhook(delivery_id: str) -> str:
    """Send the delivery's next attempt, if it is due and no other worker holds it."""
    return delivery.deliverer.deliver(delivery_id)


@task()
def send_notice(notice_id: int) -> str:
    """Send one email notice, if no other worker holds it."""
    return notices.notice_send(notice_id=notice_id)


@task()
def run_job(job: str, period_start: str) -> dict[str, int]:
    """Run one period of a periodic job (claimed in events/jobs.py)."""
    return jobs.job_run(job=job, start=datetime.fromisoformat(period_start))
