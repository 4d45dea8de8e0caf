"""Serializers that document the keys API's responses; `api.key_payload` renders them.

They are never used to render a response: the contract test (Schemathesis) checks
that what `key_payload` returns matches what these describe.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from apikeys.models import Environment, Kind, Status


class KeyOwnerSerializer(serializers.Serializer):
    id = serializers.CharField()
    email = serializers.EmailField()


class CreatedBySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "api_key", "system"])
    id = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_blank=True)


class KeyOutputSerializer(serializers.Serializer):
    """An API key as the API shows it; it never holds the token or its hash."""

    id = serializers.CharField(help_text="The key id, the public part of the token.")
    prefix = serializers.CharField(
        help_text="`kw_<env>_<key_id>` (`kw_pub_<env>_<key_id>` if publishable), shown in lists."
    )
    last4 = serializers.CharField(help_text="The token's last four characters.")
    name = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=Kind.choices, help_text="`secret`, or `publishable` for code in a browser."
    )
    environment = serializers.ChoiceField(choices=Environment.choices)
    scopes = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=Status.choices)
    owner = KeyOwnerSerializer(allow_null=True, help_text="Null for an organisation key.")
    created_by = CreatedBySerializer()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    replaced_by = serializers.CharField(allow_null=True, help_text="The id of its replacement.")
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_used_ip = serializers.IPAddressField(allow_null=True)
    usage_count = serializers.IntegerField(min_value=0)
    allowed_ips = serializers.ListField(child=serializers.CharField())
    allowed_origins = serializers.ListField(
        child=serializers.CharField(),
        help_text="A publishable key's origins (`https://shop.example.com`, `https://*.example.com`).",
    )
    resources = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text='The resources the key is limited to, like `{"bots": ["bot_…"]}`; null = all.',
    )
    rate_limit = serializers.CharField(allow_null=True)


class OrganizationOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    slug = serializers.CharField()
    name = serializers.CharField()


class WhoAmIOutputSerializer(serializers.Serializer):
    key = KeyOutputSerializer()
    effective_scopes = serializers.ListField(child=serializers.CharField())
    organization = OrganizationOutputSerializer()
    owner = KeyOwnerSerializer(allow_null=True)


class KeyListOutputSerializer(serializers.Serializer):
    results = KeyOutputSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


class KeyCreatedOutputSerializer(serializers.Serializer):
    key = KeyOutputSerializer()
    token = serializers.CharField(help_text="The whole token. It is shown here once, never again.")


class KeyRotatedOutputSerializer(KeyCreatedOutputSerializer):
    previous = KeyOutputSerializer(help_text="The old key, valid until its grace period ends.")


KEY_LIST_PARAMETERS = [
    OpenApiParameter("status", str, enum=Status.values, description="Only keys in this status."),
    OpenApiParameter("environment", str, enum=Environment.values, description="live, test or dev."),
    OpenApiParameter("kind", str, enum=Kind.values, description="secret or publishable."),
    OpenApiParameter("cursor", str, description="The cursor from a previous page's `next`."),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 200},
        description="Keys per page, 1 to 200 (default 50).",
    ),
]


KEY_ACTIVITY_PARAMETERS = [
    OpenApiParameter("since", str, description="ISO 8601 time or date: hours that end after it."),
    OpenApiParameter(
        "until", str, description="ISO 8601 time or date: hours that start before it."
    ),
    OpenApiParameter("cursor", str, description="The cursor from a previous page's `next`."),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 200},
        description="Rows per page, 1 to 200 (default 50).",
    ),
]


class KeyActivitySerializer(serializers.Serializer):
    hour = serializers.DateTimeField(help_text="The start of the UTC hour.")
    address = serializers.CharField(
        help_text='The client address; "other" for addresses past the 100th in the hour.'
    )
    route = serializers.CharField(help_text="The URL pattern, like /api/v1/keys/{key_id}.")
    outcome = serializers.CharField(help_text='"allowed", or the error code of the answer.')
    count = serializers.IntegerField(min_value=1)


class KeyActivityListOutputSerializer(serializers.Serializer):
    results = KeyActivitySerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


class UsageDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField(min_value=0)


class RateLimitSerializer(serializers.Serializer):
    rate = serializers.CharField(help_text="As written: `N/s`, `N/min`, `N/h` or `N/day`.")
    limit = serializers.IntegerField(min_value=1)
    period_seconds = serializers.IntegerField(min_value=1)
    source = serializers.ChoiceField(choices=["key", "organization"])


class KeyUsageSerializer(serializers.Serializer):
    id = serializers.CharField()
    prefix = serializers.CharField()
    name = serializers.CharField()
    environment = serializers.ChoiceField(choices=Environment.choices)
    status = serializers.ChoiceField(choices=Status.choices)
    rate_limit = RateLimitSerializer(allow_null=True, help_text="Null without a limit.")
    usage_count = serializers.IntegerField(min_value=0, help_text="All-time requests.")
    requests = serializers.IntegerField(min_value=0, help_text="Requests in the period.")
    days = UsageDaySerializer(many=True, help_text="The last 30 UTC days, oldest first.")


class UsageTodaySerializer(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField(min_value=0)
    live_requests = serializers.IntegerField(min_value=0)


class QuotaSerializer(serializers.Serializer):
    daily_limit = serializers.IntegerField(min_value=1)
    used = serializers.IntegerField(min_value=0)
    remaining = serializers.IntegerField(min_value=0)
    resets_at = serializers.DateTimeField()


# "from" is a Python keyword, so the class is built with its fields named as in the JSON.
UsageOutputSerializer = type(
    "UsageOutputSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "Requests per key and UTC day, today's total, the quota and rate limits.",
        "__module__": __name__,
        "organization": OrganizationOutputSerializer(),
        "time_zone": serializers.CharField(),
        "from": serializers.DateField(help_text="The first day of the period."),
        "to": serializers.DateField(help_text="The last day of the period (today, UTC)."),
        "today": UsageTodaySerializer(),
        "quota": QuotaSerializer(allow_null=True, help_text="Null when the organisation has none."),
        "default_rate_limit": serializers.CharField(allow_null=True),
        "keys": KeyUsageSerializer(many=True, help_text="One page of keys, newest first."),
        "next": serializers.URLField(allow_null=True, help_text="The next page of keys, or null."),
    },
)
