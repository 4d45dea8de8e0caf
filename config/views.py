"""Liveness and readiness probes."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from config.errors import Unavailable, error_response


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer while the process answers."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database answers, else 503 `unavailable`."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return error_response(Unavailable("The database is not reachable."))
    return JsonResponse({"status": "ok", "database": "ok"})
