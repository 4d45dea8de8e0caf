from django.urls import path

from events import api

urlpatterns = [
    path("webhook-endpoints", api.EndpointListCreateApi.as_view(), name="api-webhook-endpoints"),
    path(
        "webhook-endpoints/<str:endpoint_id>",
        api.EndpointDetailApi.as_view(),
        name="api-webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/rotate-secret",
        api.EndpointRotateSecretApi.as_view(),
        name="api-webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/test",
        api.EndpointTestApi.as_view(),
        name="api-webhook-endpoint-test",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/deliveries",
        api.EndpointDeliveriesApi.as_view(),
        name="api-webhook-endpoint-deliveries",
    ),
    path(
        "webhook-deliveries/<str:delivery_id>/redeliver",
        api.DeliveryRedeliverApi.as_view(),
        name="api-webhook-delivery-redeliver",
    ),
]
