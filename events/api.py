"""The webhooks API (docs/README-events.md): endpoints, their deliveries, tests and redelivery."""

from __future__ import annotations

from typing import Any

from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.api import StrictSerializer, TextField
from config.errors import NotFound
from config.pagination import NewestFirstPagination
from events import api_docs as docs
from events import services
from events.models import WebhookDelivery, WebhookEndpoint
from events.selectors import deliveries_of, delivery_payload, endpoint_payload, endpoints_of

READ = ["webhooks:read"]
WRITE = ["webhooks:write"]


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false, nothing that merely looks like one ("yes", 1)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class EndpointInputSerializer(StrictSerializer):
    url = TextField(max_length=4096)
    description = TextField(required=False, allow_blank=True, allow_null=True, max_length=1000)
    events = serializers.ListField(child=TextField(max_length=200), required=False, max_length=100)
    enabled = StrictBooleanField(required=False)


class EndpointUpdateInputSerializer(EndpointInputSerializer):
    url = TextField(max_length=4096, required=False)


def _secret_response(endpoint: WebhookEndpoint, secret: str) -> Response:
    response = Response({"endpoint": endpoint_payload(endpoint), "secret": secret}, status=201)
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    return response


class EndpointApi(APIView):
    """Shared lookups: an endpoint is found only in the caller's organisation."""

    def get_endpoint(self, request: Request, endpoint_id: str) -> WebhookEndpoint:
        endpoint = (
            endpoints_of(organization=request.auth.organization)
            .select_related("organization")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None:
            raise NotFound("No such webhook endpoint.")
        return endpoint


class EndpointListCreateApi(EndpointApi):
    """List the organisation's webhook endpoints (GET) or add one (POST)."""

    required_scopes_by_method = {"GET": READ, "POST": WRITE}

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="The organisation's webhook endpoints, newest first",
        responses=docs.EndpointListOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(
            endpoints_of(organization=request.auth.organization), request, view=self
        )
        return paginator.get_paginated_response([endpoint_payload(e) for e in page])

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Add an endpoint; its signing secret is in this response only",
        request=EndpointInputSerializer,
        responses={201: docs.EndpointSecretOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        body = EndpointInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(
            organization=request.auth.organization, actor=request.auth, **body.validated_data
        )
        return _secret_response(endpoint, secret)


class EndpointDetailApi(EndpointApi):
    """Read (GET), change (PATCH) or delete (DELETE) one webhook endpoint."""

    required_scopes_by_method = {"GET": READ, "PATCH": WRITE, "DELETE": WRITE}

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="One webhook endpoint",
        responses=docs.EndpointOutputSerializer,
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(endpoint_payload(self.get_endpoint(request, endpoint_id)))

    @extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change an endpoint's URL, description, events or whether it is enabled",
        request=EndpointUpdateInputSerializer,
        responses=docs.EndpointOutputSerializer,
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        body = EndpointUpdateInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(
            endpoint=self.get_endpoint(request, endpoint_id),
            actor=request.auth,
            **body.validated_data,
        )
        return Response(endpoint_payload(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        summary="Delete an endpoint and its deliveries",
        responses={204: None},
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        services.webhook_endpoint_delete(
            endpoint=self.get_endpoint(request, endpoint_id), actor=request.auth
        )
        return Response(status=204)


class EndpointRotateSecretApi(EndpointApi):
    """Give an endpoint a new secret; the old one keeps signing beside it for 24 hours."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="New signing secret; the old one also signs for 24 hours",
        request=None,
        responses={201: docs.EndpointSecretOutputSerializer},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint, secret = services.webhook_endpoint_rotate_secret(
            endpoint=self.get_endpoint(request, endpoint_id), actor=request.auth
        )
        return _secret_response(endpoint, secret)


class EndpointTestApi(EndpointApi):
    """Send a `webhook.test` event to one endpoint."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="webhook_endpoints_test",
        summary="Send a webhook.test event to this endpoint",
        request=None,
        responses={202: docs.DeliveryAcceptedOutputSerializer},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        delivery = services.webhook_endpoint_test(
            endpoint=self.get_endpoint(request, endpoint_id), actor=request.auth
        )
        return Response({"delivery": delivery_payload(delivery)}, status=202)


class EndpointDeliveriesApi(EndpointApi):
    """The endpoint's deliveries, newest first, each with its attempts."""

    required_scopes = READ

    @extend_schema(
        operation_id="webhook_endpoints_deliveries",
        summary="An endpoint's deliveries, newest first, with their attempts",
        responses=docs.DeliveryListOutputSerializer,
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self.get_endpoint(request, endpoint_id)
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(deliveries_of(endpoint=endpoint), request, view=self)
        return paginator.get_paginated_response([delivery_payload(d) for d in page])


class DeliveryRedeliverApi(APIView):
    """Send a delivery's event to its endpoint again, with the same `webhook-id`."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="webhook_deliveries_redeliver",
        summary="Send the event again: one new attempt, the same webhook-id",
        request=None,
        responses={202: docs.DeliveryAcceptedOutputSerializer},
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        delivery = (
            WebhookDelivery.objects.filter(pk=delivery_id, organization=request.auth.organization)
            .select_related("event", "endpoint")
            .first()
        )
        if delivery is None:
            raise NotFound("No such webhook delivery.")
        again = services.webhook_delivery_redeliver(delivery=delivery, actor=request.auth)
        return Response({"delivery": delivery_payload(again)}, status=202)
