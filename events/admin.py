"""Read-only views of events for operators; changes go through the settings page or the API."""

from __future__ import annotations

from django.contrib import admin

from events.models import JobRun, Notice, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("url", "organization", "enabled", "disabled_reason", "created_at")
    list_filter = ("enabled", "disabled_reason")
    search_fields = ("=id", "url", "organization__slug")
    exclude = ("secret_sealed", "previous_secret_sealed")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "outcome", "status_code", "latency_ms", "error", "address")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "endpoint", "state", "attempt_count", "next_attempt_at", "created_at")
    list_filter = ("state", "manual")
    search_fields = ("=id", "=event__id", "endpoint__url")
    inlines = [WebhookAttemptInline]


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdmin):
    list_display = ("kind", "subject", "slot", "organization", "state", "created_at", "sent_at")
    list_filter = ("kind", "state")
    search_fields = ("=subject", "organization__slug")


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ("job", "period_start", "worker", "claimed_at", "finished_at")
    list_filter = ("job",)
