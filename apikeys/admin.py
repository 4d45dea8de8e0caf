"""Operators' admin for keys: created, changed and revoked only through the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from apikeys import services
from apikeys.models import APIKey, Environment, Kind, Status
from apikeys.selectors import status_filter
from audit.actors import Actor
from config.admin import OfferedLookupsOnly
from config.errors import KeywardError
from orgs.models import User
from orgs.scopes import registered_scopes


def _scope_choices() -> list[tuple[str, str]]:
    return [(name, f"{name} — {text}") for name, text in registered_scopes().items()]


class LinesField(forms.CharField):
    """One entry per line (or comma), as a list."""

    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value


class APIKeyAdminForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=_scope_choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    allowed_ips = LinesField(required=False, help_text="CIDR blocks, one per line; empty = any.")
    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.SECRET, required=False)
    allowed_origins = LinesField(
        required=False,
        help_text="Publishable keys only: origins like https://shop.example.com, one per line.",
    )
    resources = forms.JSONField(
        required=False,
        help_text='Limit the key to some resources, like {"bots": ["bot_…"]}; null = all.',
    )

    class Meta:
        model = APIKey
        fields = (
            "organization",
            "owner",
            "name",
            "kind",
            "environment",
            "scopes",
            "expires_at",
            "allowed_ips",
            "allowed_origins",
            "resources",
            "rate_limit",
        )


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Status.choices

    def queryset(self, request, queryset):
        if self.value() in Status.values:
            return queryset.filter(status_filter(self.value(), timezone.now()))
        return queryset


@admin.register(APIKey)
class APIKeyAdmin(OfferedLookupsOnly, admin.ModelAdmin):
    form = APIKeyAdminForm
    list_display = (
        "masked_key",
        "name",
        "organization",
        "kind",
        "environment",
        "status",
        "last_used_at",
        "usage_count",
    )
    list_filter = (StatusFilter, "kind", "environment")
    search_fields = ("id", "name", "organization__slug")
    list_select_related = ("organization",)
    ordering = ("-created_at",)
    actions = ["revoke_selected"]
    autocomplete_fields = ("owner",)
    raw_id_fields = ("organization",)
    readonly_on_change = (
        "id",
        "masked_key",
        "organization",
        "owner",
        "kind",
        "environment",
        "status",
        "created_at",
        "created_by_label",
        "revoked_at",
        "revoked_by",
        "replaced_by",
        "last_used_at",
        "last_used_ip",
        "usage_count",
    )

    @admin.display(description="key")
    def masked_key(self, obj: APIKey) -> str:
        return obj.masked

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_on_change if obj else ()

    def get_fields(self, request, obj=None):
        editable = (
            "name",
            "scopes",
            "expires_at",
            "allowed_ips",
            "allowed_origins",
            "resources",
            "rate_limit",
        )
        if obj is None:
            return ("organization", "owner", "name", "kind", "environment", *editable[1:])
        return (*self.readonly_on_change, *editable)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = [
            f for f in self.get_fields(request, obj) if f in APIKeyAdminForm.base_fields
        ]
        form = super().get_form(request, obj, change, **kwargs)
        if "environment" in form.base_fields:
            form.base_fields["environment"].initial = Environment.LIVE
        return form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a key is revoked, never deleted: its history stays

    def save_model(self, request, obj, form, change):
        actor = Actor.of(request.user)
        data = form.cleaned_data
        try:
            if change:
                fields = {
                    name: data[name]
                    for name in form.changed_data
                    if name in services.UPDATABLE_FIELDS
                }
                if fields:
                    services.api_key_update(key=obj, actor=actor, **fields)
                return
            key, token = services.api_key_create(
                organization=data["organization"],
                actor=actor,
                owner=data.get("owner"),
                name=data["name"],
                scopes=data["scopes"],
                kind=data.get("kind") or Kind.SECRET,
                environment=data["environment"],
                expires_at=data.get("expires_at"),
                allowed_ips=data["allowed_ips"],
                allowed_origins=data["allowed_origins"],
                resources=data.get("resources"),
                rate_limit=data.get("rate_limit") or None,
            )
        except KeywardError as exc:
            request.keyward_failure = exc
            return
        obj.pk = key.pk
        obj._state.adding = False
        request.keyward_created = (key, token)

    def save_related(self, request, form, formsets, change):
        return None  # no relations are edited here

    def response_add(self, request, obj, post_url_continue=None):
        failure = getattr(request, "keyward_failure", None)
        if failure is not None:
            messages.error(request, failure.message)
            return self.response_post_save_add(request, obj)
        key, token = request.keyward_created
        # The token is rendered into this one response and stored nowhere: not in
        # a message (messages live in the session) and not in a redirect URL.
        response = TemplateResponse(
            request,
            "admin/apikeys/apikey/token_once.html",
            {
                **self.admin_site.each_context(request),
                "key": key,
                "token": token,
                "opts": self.opts,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def response_change(self, request, obj):
        failure = getattr(request, "keyward_failure", None)
        if failure is not None:
            messages.error(request, failure.message)
            return self.response_post_save_change(request, obj)
        return super().response_change(request, obj)

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset):
        actor = Actor.of(request.user)
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key, actor=actor)
            revoked += 1
        messages.success(request, f"Revoked {revoked} key(s).")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner":
            kwargs["queryset"] = User.objects.filter(is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
