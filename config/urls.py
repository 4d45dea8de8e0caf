"""Keyward's URLs: the JSON API, the probes, the admin and the pages."""

from django.apps import apps
from django.contrib import admin
from django.urls import include, path, re_path

from config import errors, views

api_v1 = [
    path("", include("apikeys.urls")),
    path("", include("audit.urls")),
    path("", include("leaks.urls")),
    path("", include("events.urls")),
    path("schema", views.SchemaApi.as_view(), name="api-schema"),
    path("docs/", views.SwaggerUiPage.as_view(), name="api-docs"),
]
if apps.is_installed("demo"):  # the demo product API (KEYWARD_DEMO)
    api_v1.append(path("", include("demo.urls")))

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/v1/", include(api_v1)),
    re_path(r"^api/", errors.api_not_found),
    path("admin/", admin.site.urls),
    # Pages (docs/README-pages.md): getting in, then each organisation's settings.
    path("orgs/<slug:slug>/settings/api-keys/", include("apikeys.urls_pages")),
    path("orgs/<slug:slug>/settings/audit-log/", include("audit.urls_pages")),
    path("orgs/<slug:slug>/settings/webhooks/", include("events.urls_pages")),
    path("", include("orgs.urls")),
]

handler400 = "config.errors.handler400"
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
