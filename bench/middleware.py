"""Bench-only middleware: name the worker and count the database work of each request."""

from __future__ import annotations

import atexit
import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from django.db import connection
from django.http import HttpRequest, HttpResponse

WRITES = ("INSERT", "UPDATE", "DELETE")

# path → [requests, queries, writes], for this process; written out when the worker exits.
totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])


def write_totals() -> None:
    """Write this process's counters where bench/run.py collects them (BENCH_STATS_DIR).

    Runs at interpreter exit: a gunicorn worker stopped gracefully leaves through
    sys.exit, after gunicorn.conf.py's worker_exit hook.
    """
    directory = os.environ.get("BENCH_STATS_DIR")
    if directory and totals:
        Path(directory, f"{os.getpid()}.json").write_text(json.dumps(dict(totals)))


class _Counter:
    def __init__(self) -> None:
        self.queries = 0
        self.writes = 0

    def __call__(self, execute, sql, params, many, context):
        self.queries += 1
        if sql.lstrip()[:6].upper() in WRITES:
            self.writes += 1
        return execute(sql, params, many, context)


class BenchMiddleware:
    """Add `X-Keyward-Worker` (the pid) and `X-Bench-Queries`/`X-Bench-Writes` to responses.

    Counting wraps each query in one Python call, the same for every guard; it
    works with DEBUG off, unlike `connection.queries`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.pid = str(os.getpid())
        atexit.unregister(write_totals)  # once per process, however many handlers load
        atexit.register(write_totals)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        counter = _Counter()
        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        row = totals[request.path]
        row[0] += 1
        row[1] += counter.queries
        row[2] += counter.writes
        response["X-Keyward-Worker"] = self.pid
        response["X-Bench-Queries"] = str(counter.queries)
        response["X-Bench-Writes"] = str(counter.writes)
        return response
