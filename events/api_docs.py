"""Serializers that document the webhooks API's responses; events/api.py renders them.

The contract test (Schemathesis) checks that what the views return matches these.
"""

from __future__ import annotations

from rest_framework import serializers

from events.catalog import EVENT_TYPES
from events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointOutputSerializer(serializers.Serializer):
    """A webhook endpoint; it never holds its secret."""

    id = serializers.CharField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        help_text="The event types sent to it; empty means all.",
    )
    enabled = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(
        choices=[c for c in WebhookEndpoint.DisabledReason.values if c],
        allow_null=True,
        help_text="Why it is disabled: turned off, 410 Gone, or 5 days of failures.",
    )
    created_at = serializers.DateTimeField()
    secret_rotated_at = serializers.DateTimeField(allow_null=True)


class EndpointListOutputSerializer(serializers.Serializer):
    results = EndpointOutputSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class EndpointSecretOutputSerializer(serializers.Serializer):
    endpoint = EndpointOutputSerializer()
    secret = serializers.RegexField(
        r"^whsec_[A-Za-z0-9+/]{43}=$",
        help_text="The signing secret, shown in this response only.",
    )


class AttemptOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=1)
    started_at = serializers.DateTimeField()
    outcome = serializers.ChoiceField(choices=WebhookAttempt.Outcome.values)
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    response_excerpt = serializers.CharField(
        allow_blank=True, help_text="The first 1 KB of the answer."
    )


class EventSummarySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The `webhook-id` of every attempt.")
    type = serializers.ChoiceField(choices=list(EVENT_TYPES))
    created_at = serializers.DateTimeField()


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    endpoint_id = serializers.CharField()
    event = EventSummarySerializer()
    payload = serializers.DictField(help_text="The JSON body sent, as signed.")
    state = serializers.ChoiceField(choices=WebhookDelivery.State.values)
    manual = serializers.BooleanField(help_text="A test or a redelivery: one attempt.")
    attempt_count = serializers.IntegerField(min_value=0)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    attempts = AttemptOutputSerializer(many=True)


class DeliveryListOutputSerializer(serializers.Serializer):
    results = DeliveryOutputSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class DeliveryAcceptedOutputSerializer(serializers.Serializer):
    delivery = DeliveryOutputSerializer()
