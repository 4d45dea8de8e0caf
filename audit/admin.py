"""The audit log in the admin: readable, never writable, not even by a superuser."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from config.admin import OfferedLookupsOnly


@admin.register(AuditEvent)
class AuditEventAdmin(OfferedLookupsOnly, admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "organization",
        "seq",
        "action",
        "actor_type",
        "actor_label",
        "target_label",
        "ip",
        "request_id",
    )
    list_filter = ("action", "actor_type")
    search_fields = ("action", "actor_label", "target_label", "target_id", "request_id")
    list_select_related = ("organization",)
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
