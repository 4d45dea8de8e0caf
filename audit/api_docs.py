"""Serializers and parameters that document `GET /api/v1/audit-events`; `event_payload` renders."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers


class AuditActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "api_key", "system"])
    id = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_blank=True)


class AuditTargetSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_blank=True)


class AuditEventOutputSerializer(serializers.Serializer):
    """An audit event as the API shows it (docs/reference/audit.md)."""

    id = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    action = serializers.CharField()
    actor = AuditActorSerializer()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField(allow_null=True)
    request_id = serializers.CharField(allow_null=True)
    trace_id = serializers.CharField(allow_null=True)
    target = AuditTargetSerializer(allow_null=True)
    changes = serializers.DictField(help_text='{"field": {"before": …, "after": …}}')


class AuditEventListOutputSerializer(serializers.Serializer):
    results = AuditEventOutputSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


def _text(pattern: str | None = None) -> dict:
    schema: dict = {"type": "string", "maxLength": 64}
    if pattern:
        # The view reads an empty filter (`?actor=`) as no filter, as DRF does for
        # query strings: the published pattern admits the empty string too.
        schema["pattern"] = f"^(?:{pattern.removeprefix('^').removesuffix('$')})?$"
    return schema


def list_parameters(action_re: str, id_re: str) -> list[OpenApiParameter]:
    """Return the filters of the audit-events list, with the patterns the view checks."""
    instant = "An ISO 8601 time, or a date (its midnight UTC). Empty means no filter."
    return [
        OpenApiParameter(
            "action",
            _text(action_re),
            description="An action, or a prefix ending in '.'. Empty means no filter.",
        ),
        OpenApiParameter("actor", _text(id_re), description="The actor's id."),
        OpenApiParameter("target", _text(id_re), description="The target's id."),
        OpenApiParameter("since", str, description=instant),
        OpenApiParameter("until", str, description=f"{instant} Later than since."),
        OpenApiParameter("cursor", str, description="The cursor from a previous page's `next`."),
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": 200},
            description="Events per page, 1 to 200 (default 50).",
        ),
    ]
