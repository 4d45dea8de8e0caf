"""Page URLs of the webhooks settings, under /orgs/<slug>/settings/webhooks/."""

from django.urls import path

from events import views

urlpatterns = [
    path("", views.WebhooksView.as_view(), name="webhooks"),
    path("new/", views.EndpointCreateView.as_view(), name="webhook-create"),
    path("<str:endpoint_id>/edit/", views.EndpointEditView.as_view(), name="webhook-edit"),
    path("<str:endpoint_id>/delete/", views.EndpointDeleteView.as_view(), name="webhook-delete"),
    path("<str:endpoint_id>/test/", views.EndpointTestView.as_view(), name="webhook-test"),
    path(
        "<str:endpoint_id>/rotate-secret/",
        views.EndpointRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "deliveries/<str:delivery_id>/redeliver/",
        views.DeliveryRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
]
