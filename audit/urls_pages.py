"""Page URLs of the audit log, under /orgs/<slug>/settings/audit-log/."""

from django.urls import path

from audit import views

urlpatterns = [
    path("", views.AuditLogView.as_view(), name="audit-log"),
    path("export.csv", views.AuditExportView.as_view(), name="audit-export"),
]
