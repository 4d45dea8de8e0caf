"""Liveness and readiness probes, and the API's OpenAPI document and Swagger UI."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

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


class SchemaApi(SpectacularAPIView):
    """The OpenAPI 3 document, as JSON unless YAML is asked for.

    JSON answers `application/vnd.oai.openapi+json` (the default) and
    `application/json`; YAML answers `application/vnd.oai.openapi` and
    `application/yaml`. Any other `Accept` gets the default.
    """

    renderer_classes = [
        OpenApiJsonRenderer,
        OpenApiJsonRenderer2,
        OpenApiYamlRenderer,
        OpenApiYamlRenderer2,
    ]


class SwaggerUiPage(SpectacularSwaggerSplitView):
    """Swagger UI from the installed sidecar files; its script is a file, never inline."""

    url_name = "api-schema"
