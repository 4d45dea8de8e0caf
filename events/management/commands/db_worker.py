"""`python manage.py db_worker`: django-tasks-db's worker, plus Keyward's periodic jobs.

Everything the framework's worker does is unchanged (this subclasses its command);
before its loop starts, a scheduler thread begins claiming Keyward's periodic jobs
(events/scheduler.py), so that no other daemon is needed. Run as many as you like,
on as many machines: each job still runs once per period.
"""

from __future__ import annotations

import os

from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from events.scheduler import Scheduler


class Command(DatabaseWorkerCommand):
    help = "Run a database task worker, with Keyward's periodic jobs (webhooks, email notices)."

    def handle(self, *args, **options) -> None:
        # Under --reload the parent only watches files; the child process works.
        if not options.get("reload") or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
            Scheduler(worker=options.get("worker_id") or "").start()
        super().handle(*args, **options)
