"""The periodic-job clock inside each worker: claims each job's period and queues the job.

Started by our `db_worker` (events/management/commands/db_worker.py) in a daemon
thread beside the framework's worker loop. It holds no state: the claim is the
`JobRun` row (events/jobs.py), so any number of workers, restarted any number of
times, run each job once per period.
"""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, transaction
from django.utils import timezone

from events import jobs

logger = logging.getLogger("keyward.scheduler")


class Scheduler:
    """Every `tick` seconds, claim and queue the periodic jobs whose period has begun."""

    tick = 5.0

    def __init__(self, worker: str = "") -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[str]:
        """Claim every job whose current period nobody has claimed; return the ones queued."""
        from events.tasks import run_job

        now = timezone.now()
        queued = []
        for job in jobs.JOBS.values():
            start = jobs.period_start(job, now)
            try:
                if not jobs.job_claim(job=job.name, start=start, worker=self.worker):
                    continue
            except Exception:
                logger.exception("Could not claim the periodic job %s.", job.name)
                continue
            with transaction.atomic():
                run_job.enqueue(job.name, start.isoformat())
            queued.append(job.name)
        return queued

    def start(self) -> None:
        """Run in a daemon thread until stop(), or until the process exits."""
        self._thread = threading.Thread(target=self._run, name="keyward-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:
                logger.exception("The periodic job scheduler failed; trying again.")
            finally:
                close_old_connections()
            if self._stop.wait(self.tick):
                return
