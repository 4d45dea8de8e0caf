from django.urls import path

from apikeys import api

urlpatterns = [
    path("whoami", api.WhoAmIApi.as_view(), name="api-whoami"),
    path("keys", api.KeyListCreateApi.as_view(), name="api-keys"),
    path("keys/<str:key_id>", api.KeyDetailApi.as_view(), name="api-key-detail"),
    path("keys/<str:key_id>/rotate", api.KeyRotateApi.as_view(), name="api-key-rotate"),
    path("keys/<str:key_id>/revoke", api.KeyRevokeApi.as_view(), name="api-key-revoke"),
    path("keys/<str:key_id>/activity", api.KeyActivityApi.as_view(), name="api-key-activity"),
    path("usage", api.UsageApi.as_view(), name="api-usage"),
]
