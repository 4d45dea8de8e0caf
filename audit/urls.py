from django.urls import path

from audit import api

urlpatterns = [
    path("audit-events", api.AuditEventListApi.as_view(), name="api-audit-events"),
]
