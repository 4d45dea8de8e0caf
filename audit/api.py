"""The audit log over the API: `GET /api/v1/audit-events`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from audit import api_docs as docs
from audit.models import AuditEvent
from audit.selectors import audit_events_visible
from config.pagination import NewestFirstPagination

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?$")
ID_RE = re.compile(r"^[A-Za-z0-9._:-]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def event_payload(event: AuditEvent) -> dict[str, Any]:
    """Return the event as docs/reference/audit.md shows it over the API."""
    return {
        "id": str(event.pk),
        "occurred_at": _iso(event.occurred_at),
        "action": event.action,
        "actor": {
            "type": event.actor_type,
            "id": event.actor_id or None,
            "label": event.actor_label,
        },
        "ip": event.ip,
        "user_agent": event.user_agent or None,
        "request_id": event.request_id or None,
        "trace_id": event.trace_id or None,
        "target": (
            {"type": event.target_type, "id": event.target_id or None, "label": event.target_label}
            if event.target_type
            else None
        ),
        "changes": event.changes,
    }


class InstantField(serializers.DateTimeField):
    """An ISO 8601 time; a date alone means its midnight UTC."""

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str) and DATE_RE.match(value):
            try:
                day = date.fromisoformat(value)
            except ValueError:
                self.fail("invalid", format="YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z|+HH:MM]")
            return datetime.combine(day, time.min, tzinfo=UTC)
        return super().to_internal_value(value)


class AuditEventPagination(NewestFirstPagination):
    ordering = ("-seq",)


class AuditEventListApi(APIView):
    """List the organisation's audit events, newest first."""

    required_scopes = ["audit:read"]

    class FilterSerializer(serializers.Serializer):
        action = serializers.RegexField(
            ACTION_RE,
            max_length=64,
            required=False,
            error_messages={
                "invalid": "Give an action such as api_key.revoked, or a prefix ending in '.'."
            },
        )
        actor = serializers.RegexField(ID_RE, max_length=64, required=False)
        target = serializers.RegexField(ID_RE, max_length=64, required=False)
        since = InstantField(required=False)
        until = InstantField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            since, until = attrs.get("since"), attrs.get("until")
            if since is not None and until is not None and until <= since:
                raise serializers.ValidationError({"until": ["Must be later than since."]})
            return attrs

    @extend_schema(
        operation_id="audit_events_list",
        summary="The organisation's audit events, newest first",
        parameters=docs.list_parameters(ACTION_RE.pattern, ID_RE.pattern),
        responses=docs.AuditEventListOutputSerializer,
    )
    def get(self, request: Request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = audit_events_visible(
            organization=request.auth.organization, **filters.validated_data
        )
        paginator = AuditEventPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response([event_payload(event) for event in page])
