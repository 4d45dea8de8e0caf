"""Bench-only middleware: name the worker and count the database work of each request."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse

WRITES = ("INSERT", "UPDATE", "DELETE")

# path → [requests, queries, writes], for this process; written out when the worker exits.
totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])


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
