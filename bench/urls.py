"""Keyward's URLs plus the bench views under /bench/."""

from django.conf import settings
from django.urls import path

from bench import views
from config.urls import handler404, handler500  # noqa: F401
from config.urls import urlpatterns as keyward_urlpatterns

urlpatterns = [
    path("bench/none", views.NoAuthView.as_view()),
    path("bench/keyward", views.KeywardView.as_view()),
    path("bench/keyward-limited", views.KeywardView.as_view()),
    path("bench/scope/<str:scope>", views.KeywardScopeView.as_view()),
    path("bench/drf-token", views.DrfTokenView.as_view()),
    *keyward_urlpatterns,
]
if settings.BENCH_PEERS:
    urlpatterns.insert(0, path("bench/drf-api-key", views.drf_api_key_view().as_view()))
