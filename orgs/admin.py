"""Operators' admin for people and organisations; every change goes through a service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.forms import UserCreationForm as DjangoUserCreationForm
from django.utils import timezone

from audit.actors import Actor
from config.admin import OfferedLookupsOnly
from config.errors import KeywardError
from orgs import services
from orgs.models import Membership, Organization, User


class UserCreationForm(DjangoUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(OfferedLookupsOnly, DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "date_joined")
    search_fields = ("email", "full_name")
    list_filter = ("is_active", "is_staff", "is_superuser")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name",)}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined", "email_verified_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def save_model(self, request, obj, form, change):
        if not change and obj.email_verified_at is None:
            obj.email_verified_at = timezone.now()  # the operator vouches for the address
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        if deactivating:
            # Deactivation revokes the person's personal keys, through the service.
            obj.is_active = True
            super().save_model(request, obj, form, change)
            services.user_deactivate(user=obj, actor=Actor.of(request.user))
            return
        super().save_model(request, obj, form, change)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ("name", "slug", *Organization.POLICY_FIELDS)


@admin.register(Organization)
class OrganizationAdmin(OfferedLookupsOnly, admin.ModelAdmin):
    form = OrganizationForm
    inlines = [MembershipInline]
    list_display = (
        "name",
        "slug",
        "created_at",
        "members_can_create_keys",
        "daily_request_quota",
    )
    search_fields = ("name", "slug")
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request, obj=None):
        return ("slug", "created_at") if obj else ("created_at",)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # keys and the audit log refer to it; it is never deleted

    def save_model(self, request, obj, form, change):
        if not change:
            created = services.organization_create(
                name=obj.name,
                slug=obj.slug,
                owner=request.user,
                actor=Actor.of(request.user),
            )
            obj.pk = created.pk
            obj._state.adding = False
            fields = {name: form.cleaned_data[name] for name in Organization.POLICY_FIELDS}
        else:
            fields = {name: form.cleaned_data[name] for name in form.changed_data}
        if fields:
            services.organization_update(organization=obj, actor=Actor.of(request.user), **fields)
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        organization = form.instance
        for inline_form in formset.forms:
            if not inline_form.has_changed() and not formset._should_delete_form(inline_form):
                continue
            membership = inline_form.instance
            try:
                if formset._should_delete_form(inline_form):
                    if membership.pk:
                        services.membership_remove(
                            membership=membership, actor=Actor.of(request.user)
                        )
                elif membership.pk is None:
                    services.membership_add(
                        organization=organization,
                        user=inline_form.cleaned_data["user"],
                        role=inline_form.cleaned_data["role"],
                        actor=Actor.of(request.user),
                    )
                elif "role" in inline_form.changed_data:
                    services.membership_role_change(
                        membership=membership,
                        role=inline_form.cleaned_data["role"],
                        actor=Actor.of(request.user),
                    )
            except KeywardError as exc:
                messages.error(request, f"{membership.user}: {exc.message}")
        formset.new_objects, formset.changed_objects, formset.deleted_objects = (
            [],
            [],
            [],
        )
