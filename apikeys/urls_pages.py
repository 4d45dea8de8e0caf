"""Page URLs of the API keys settings, under /orgs/<slug>/settings/api-keys/."""

from django.urls import path

from apikeys import views

urlpatterns = [
    path("", views.KeyListView.as_view(), name="keys"),
    path("new/", views.KeyCreateView.as_view(), name="key-create"),
    path("<str:key_id>/", views.KeyDetailView.as_view(), name="key-detail"),
    path("<str:key_id>/rotate/", views.KeyRotateView.as_view(), name="key-rotate"),
    path("<str:key_id>/revoke/", views.KeyRevokeView.as_view(), name="key-revoke"),
]
