"""The keys API of docs/reference/api.md: whoami, the six key endpoints and usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys import api_docs as docs
from apikeys import services
from apikeys.models import APIKey, Environment, KeyActivity, Kind
from apikeys.payloads import iso as _iso
from apikeys.payloads import key_payload
from apikeys.selectors import (
    api_keys_visible,
    key_activity_for,
    status_filter,
    usage_keys_worth_showing,
    usage_report,
)
from apikeys.throttling import DailyQuotaThrottle, effective_rate
from audit.api import InstantField
from config.errors import NotFound, ValidationFailed
from config.openapi import error_response
from config.pagination import NewestFirstPagination


def token_response(body: dict[str, Any]) -> Response:
    """Answer 201 with a body that holds a token: no cache, shared or private, may keep it."""
    return Response(body, status=201, headers={"Cache-Control": "no-store"})


class TextField(serializers.CharField):
    """A CharField that takes only JSON strings: 5 is not a name."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not know."""

    refuses_unknown_fields = True  # the schema says additionalProperties: false

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        return super().to_internal_value(data)


class KeyApi(APIView):
    """Shared lookups: a key is found only inside the caller's visible keys."""

    def visible_keys(self, request: Request):
        return api_keys_visible(organization=request.auth.organization, viewer=request.auth)

    def get_key(self, request: Request, key_id: str) -> APIKey:
        key = (
            self.visible_keys(request)
            .select_related("organization", "owner")
            .filter(pk=key_id)
            .first()
        )
        if key is None:
            raise NotFound("No such key.")
        return key


class WhoAmIApi(KeyApi):
    """Return the calling key, its effective scopes, organisation and owner."""

    required_scopes: list[str] = []

    @extend_schema(
        operation_id="whoami",
        summary="The calling key, its effective scopes and organisation",
        responses=docs.WhoAmIOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        # Authentication may have served the key from this process's cache; usage and
        # last use are read fresh so that they trail the batched counts by seconds only.
        key = APIKey.objects.select_related("organization", "owner").get(pk=request.auth.pk)
        key._effective_scopes = request.auth.effective_scopes
        organization = key.organization
        owner = key.owner if key.owner_id else None
        return Response(
            {
                "key": key_payload(key),
                "effective_scopes": sorted(key.effective_scopes),
                "organization": {
                    "id": str(organization.pk),
                    "slug": organization.slug,
                    "name": organization.name,
                },
                "owner": {"id": str(owner.pk), "email": owner.email} if owner else None,
            }
        )


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": 'Limit the key to these resources, like {"bots": ["bot_…"]}; null = all.',
    }
)
class ResourcesField(serializers.JSONField):
    """`{"<type>": ["id", …]}` or null, passed as sent: `services` checks types and ids."""


class KeyCreateInputSerializer(StrictSerializer):
    name = TextField(trim_whitespace=False, allow_blank=True)
    kind = TextField(required=False, default=Kind.SECRET, help_text="secret or publishable.")
    scopes = serializers.ListField(child=TextField(), required=False)
    environment = TextField(required=False, default=Environment.LIVE)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    allowed_ips = serializers.ListField(child=TextField(), required=False, default=list)
    allowed_origins = serializers.ListField(
        child=TextField(), required=False, default=list, help_text="Publishable keys only."
    )
    resources = ResourcesField(required=False, allow_null=True, default=None)
    rate_limit = TextField(required=False, allow_null=True, default=None)


class KeyListCreateApi(KeyApi):
    """List the organisation's keys (GET) or create one (POST)."""

    required_scopes_by_method = {"GET": ["keys:read"], "POST": ["keys:write"]}

    @extend_schema(
        operation_id="keys_list",
        summary="The organisation's keys, newest first",
        parameters=docs.KEY_LIST_PARAMETERS,
        responses=docs.KeyListOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        keys = self.visible_keys(request).select_related("owner")
        status = request.query_params.get("status")
        if status is not None:
            keys = keys.filter(status_filter(status, timezone.now()))
        environment = request.query_params.get("environment")
        if environment is not None:
            if environment not in Environment.values:
                raise ValidationFailed.on("environment", "Choose 'live', 'test' or 'dev'.")
            keys = keys.filter(environment=environment)
        kind = request.query_params.get("kind")
        if kind is not None:
            if kind not in Kind.values:
                raise ValidationFailed.on("kind", "Choose 'secret' or 'publishable'.")
            keys = keys.filter(kind=kind)
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(keys, request, view=self)
        return paginator.get_paginated_response([key_payload(key) for key in page])

    @extend_schema(
        operation_id="keys_create",
        summary="Create a key; the token is in this response only",
        request=KeyCreateInputSerializer,
        responses={201: docs.KeyCreatedOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        body = KeyCreateInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, token = services.api_key_create(
            organization=request.auth.organization,
            actor=request.auth,
            **body.validated_data,
        )
        return token_response({"key": key_payload(key), "token": token})


class KeyUpdateInputSerializer(StrictSerializer):
    name = TextField(trim_whitespace=False, allow_blank=True, required=False)
    scopes = serializers.ListField(child=TextField(), required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_ips = serializers.ListField(child=TextField(), required=False)
    allowed_origins = serializers.ListField(child=TextField(), required=False)
    resources = ResourcesField(required=False, allow_null=True)
    rate_limit = TextField(required=False, allow_null=True)


class KeyDetailApi(KeyApi):
    """Read (GET) or change (PATCH) one key of the organisation."""

    required_scopes_by_method = {"GET": ["keys:read"], "PATCH": ["keys:write"]}

    @extend_schema(
        operation_id="keys_retrieve", summary="One key", responses=docs.KeyOutputSerializer
    )
    def get(self, request: Request, key_id: str) -> Response:
        return Response(key_payload(self.get_key(request, key_id)))

    @extend_schema(
        operation_id="keys_update",
        summary="Change a key's name, scopes, addresses, rate limit or expiry",
        request=KeyUpdateInputSerializer,
        responses={200: docs.KeyOutputSerializer, 409: error_response(409)},
    )
    def patch(self, request: Request, key_id: str) -> Response:
        body = KeyUpdateInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = self.get_key(request, key_id)
        key = services.api_key_update(key=key, actor=request.auth, **body.validated_data)
        return Response(key_payload(key))


class KeyRotateInputSerializer(StrictSerializer):
    grace_period = serializers.IntegerField(required=False, default=0)


class KeyRotateApi(KeyApi):
    """Replace a key with a new one, keeping the old one for a grace period."""

    required_scopes = ["keys:write"]

    @extend_schema(
        operation_id="keys_rotate",
        summary="Replace a key; the old one works for the grace period",
        request=KeyRotateInputSerializer,
        responses={201: docs.KeyRotatedOutputSerializer, 409: error_response(409)},
    )
    def post(self, request: Request, key_id: str) -> Response:
        body = KeyRotateInputSerializer(data=request.data)  # no body parses as {}
        body.is_valid(raise_exception=True)
        key = self.get_key(request, key_id)
        new, token, old = services.api_key_rotate(
            key=key,
            actor=request.auth,
            grace_period=body.validated_data["grace_period"],
        )
        return token_response(
            {"key": key_payload(new), "token": token, "previous": key_payload(old)}
        )


class KeyActivityPagination(NewestFirstPagination):
    ordering = ("-hour", "-count", "address", "route")


def activity_payload(row: KeyActivity) -> dict[str, Any]:
    return {
        "hour": _iso(row.hour),
        "address": row.address,
        "route": row.route,
        "outcome": row.outcome,
        "count": row.count,
    }


class KeyActivityApi(KeyApi):
    """What a key did, per hour: addresses, routes and outcomes, for 30 days."""

    required_scopes = ["keys:read"]

    class FilterSerializer(serializers.Serializer):
        since = InstantField(required=False)
        until = InstantField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            since, until = attrs.get("since"), attrs.get("until")
            if since is not None and until is not None and until <= since:
                raise serializers.ValidationError({"until": ["Must be later than since."]})
            return attrs

    @extend_schema(
        operation_id="keys_activity",
        summary="A key's activity per hour: client addresses, routes and outcomes",
        parameters=docs.KEY_ACTIVITY_PARAMETERS,
        responses=docs.KeyActivityListOutputSerializer,
    )
    def get(self, request: Request, key_id: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        key = self.get_key(request, key_id)
        rows = key_activity_for(key=key, **filters.validated_data)
        paginator = KeyActivityPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([activity_payload(row) for row in page])


class KeyRevokeApi(KeyApi):
    """Revoke a key at once, for every process."""

    required_scopes = ["keys:write"]

    @extend_schema(
        operation_id="keys_revoke",
        summary="Revoke a key at once; revoking twice is harmless",
        request=None,
        responses=docs.KeyOutputSerializer,
    )
    def post(self, request: Request, key_id: str) -> Response:
        key = services.api_key_revoke(key=self.get_key(request, key_id), actor=request.auth)
        return Response(key_payload(key))


class UsageApi(KeyApi):
    """Requests per key and UTC day for the last 30 days, with the quota and rate limits."""

    required_scopes = ["usage:read"]
    days = 30

    @extend_schema(
        operation_id="usage",
        summary="Requests per key and day for 30 days, today's total, quota and rate limits",
        responses=docs.UsageOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        organization = request.auth.organization
        quota = DailyQuotaThrottle()
        today = datetime.fromtimestamp(quota.timer(), tz=UTC).date()
        first = today - timedelta(days=self.days - 1)
        visible = self.visible_keys(request)
        paginator = NewestFirstPagination()
        keys = paginator.paginate_queryset(
            usage_keys_worth_showing(keys=visible, first=first, now=timezone.now()),
            request,
            view=self,
        )
        report = usage_report(
            organization=organization, visible=visible, page=keys, first=first, last=today
        )
        key_rows = []
        for key in keys:
            key.organization = organization
            key_rows.append(_key_usage(key, report.days, report.by_key.get(key.pk, {})))
        limit = organization.daily_request_quota
        used = min(quota.used(organization), limit) if limit is not None else None
        return Response(
            {
                "organization": {
                    "id": str(organization.pk),
                    "slug": organization.slug,
                    "name": organization.name,
                },
                "time_zone": "UTC",
                "from": first.isoformat(),
                "to": today.isoformat(),
                "today": {
                    "date": today.isoformat(),
                    "requests": report.requests_last_day,
                    "live_requests": report.live_requests_last_day,
                },
                "quota": None
                if limit is None
                else {
                    "daily_limit": limit,
                    "used": used,
                    "remaining": limit - used,
                    "resets_at": _iso(quota.resets_at()),
                },
                "default_rate_limit": organization.default_rate_limit,
                "keys": key_rows,
                "next": paginator.get_next_link(),
            }
        )


def _key_usage(key: APIKey, day_list: list, counts: dict) -> dict[str, Any]:
    found = effective_rate(key)
    rate_limit = None
    if found is not None:
        rate, source = found
        rate_limit = {
            "rate": rate.text,
            "limit": rate.limit,
            "period_seconds": rate.period,
            "source": source,
        }
    days = [{"date": day.isoformat(), "requests": counts.get(day, 0)} for day in day_list]
    return {
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "environment": key.environment,
        "status": key.status,
        "rate_limit": rate_limit,
        "usage_count": key.usage_count,
        "requests": sum(day["requests"] for day in days),
        "days": days,
    }
