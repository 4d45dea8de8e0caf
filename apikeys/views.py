"""The API keys pages: list, create, one key, rotate and revoke."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.generic import TemplateView, View

from apikeys import services
from apikeys.charts import bar_chart
from apikeys.forms import KeyCreateForm, KeyRotateForm
from apikeys.models import APIKey, PublishableToken, Status
from apikeys.resources import resource_choices, resource_types
from apikeys.selectors import api_keys_visible, daily_usage, key_activity_summary, status_filter
from audit.selectors import events_for_page
from config.errors import KeywardError
from orgs.mixins import OrgPageMixin, no_store, show_errors
from orgs.nonces import nonce_consume, nonce_issue
from orgs.roles import Permission, RolePolicy

KEYS_PER_PAGE = 50
RESUBMITTED = (
    "That form was already used (a reload or the back button), so nothing was created. "
    "Tokens are shown only once."
)


class KeyPageMixin(OrgPageMixin):
    """Owners and admins see every key; members their own, where the organisation allows."""

    section = "keys"

    def has_access(self, policy: RolePolicy) -> bool:
        return policy.can(Permission.MANAGE_ORG_KEYS) or policy.can(Permission.CREATE_PERSONAL_KEYS)

    def visible_keys(self):
        return api_keys_visible(organization=self.organization, viewer=self.request.user)

    def get_key(self, key_id: str) -> APIKey:
        key = (
            self.visible_keys()
            .select_related("organization", "owner", "created_by", "replaced_by")
            .filter(pk=key_id)
            .first()
        )
        if key is None:
            raise Http404("No such key.")
        return key

    def keys_url(self) -> str:
        return reverse("keys", kwargs={"slug": self.organization.slug})

    def key_url(self, key: APIKey) -> str:
        return reverse("key-detail", kwargs={"slug": self.organization.slug, "key_id": key.pk})

    def show_token(self, key: APIKey, token: str, *, previous: APIKey | None = None):
        """Answer with the one page that ever shows this token; no cache may keep it."""
        context = self.get_context_data(key=key, token=token, previous=previous)
        return no_store(render(self.request, "apikeys/token_once.html", context))


class KeyListView(KeyPageMixin, TemplateView):
    template_name = "apikeys/key_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        show = "active" if self.request.GET.get("show") == "active" else "all"
        keys = self.visible_keys().select_related("owner", "created_by")
        if show == "active":
            keys = keys.filter(
                status_filter(Status.ACTIVE, now) | status_filter(Status.SUPERSEDED, now)
            )
        page = Paginator(keys.order_by("-created_at", "-id"), KEYS_PER_PAGE).get_page(
            self.request.GET.get("page")
        )
        rows = []
        for key in page.object_list:
            status = key.status_at(now)
            rows.append(
                {
                    "key": key,
                    "status": status,
                    "finished": status in (Status.REVOKED, Status.EXPIRED),
                    "may_rotate": services.api_key_mintable_by(key=key, actor=self.request.user),
                    "ended_at": key.revoked_at if status == Status.REVOKED else key.expires_at,
                }
            )
        context.update(rows=rows, show=show, now=now, page=page)
        return context


class KeyCreateView(KeyPageMixin, View):
    template_name = "apikeys/key_form.html"

    def form(self, data=None) -> KeyCreateForm:
        manages = self.policy.can(Permission.MANAGE_ORG_KEYS)
        return KeyCreateForm(
            data,
            organization=self.organization,
            grantable=services.grantable_scopes(
                organization=self.organization, actor=self.request.user
            ),
            may_create_org_keys=manages,
            resource_options={
                name: resource_choices(
                    self.organization, name, user=None if manages else self.request.user
                )
                for name in resource_types()
            },
        )

    def render_form(self, form: KeyCreateForm, status: int = 200) -> HttpResponse:
        # Every form shown carries a fresh nonce: the one just spent cannot be reused.
        nonce = nonce_issue(self.request)
        if form.is_bound:
            form.data = form.data.copy()
            form.data["nonce"] = nonce
        else:
            form.initial["nonce"] = nonce
        context = self.get_context_data(form=form)
        return no_store(render(self.request, self.template_name, context, status=status))

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_form(self.form())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(request, RESUBMITTED)
            return HttpResponseRedirect(self.keys_url(), status=303)
        form = self.form(request.POST)
        if not form.is_valid():
            return self.render_form(form, status=400)
        now = timezone.now()
        try:
            key, token = services.api_key_create(
                organization=self.organization,
                actor=request.user,
                owner=request.user if form.is_personal else None,
                **form.service_fields(now),
            )
        except KeywardError as error:
            expiry_field = "expiry_date" if form.cleaned_data["expiry"] == "date" else "expiry"
            show_errors(form, error, {"expires_at": expiry_field})
            return self.render_form(form, status=400)
        return self.show_token(key, token)


class KeyDetailView(KeyPageMixin, TemplateView):
    template_name = "apikeys/key_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        key = self.get_key(kwargs["key_id"])
        events = None
        if self.policy.can(Permission.READ_AUDIT_LOG):
            events = list(events_for_page(organization=self.organization, target=key.pk)[:50])
        status = key.status
        shown_token = None
        if key.is_publishable and status in (Status.ACTIVE, Status.SUPERSEDED):
            shown_token = (
                PublishableToken.objects.filter(key=key).values_list("token", flat=True).first()
            )
        context.update(
            key=key,
            status=status,
            may_rotate=services.api_key_mintable_by(key=key, actor=self.request.user),
            chart=bar_chart(daily_usage(key=key, days=30)),
            events=events,
            replaces=APIKey.objects.filter(replaced_by=key).first(),
            activity=key_activity_summary(key=key),
            publishable_token=shown_token,
            resource_names=_resource_names(key),
        )
        return context

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        response = super().render_to_response(context, **kwargs)
        return no_store(response) if context.get("publishable_token") else response


def _resource_names(key: APIKey) -> list[dict[str, Any]]:
    """Return each resource type a key is limited to, with the names of its resources."""
    if key.resources is None:
        return []
    registered = resource_types()
    rows = []
    for name, ids in key.resources.items():
        names = {}
        if name in registered:
            names = dict(resource_choices(key.organization, name, ids=ids))
        rows.append({"type": name, "items": [(i, names.get(i, "(gone)")) for i in ids]})
    return rows


class KeyRotateView(KeyPageMixin, View):
    template_name = "apikeys/key_rotate.html"

    def render_form(self, key: APIKey, form: KeyRotateForm, status: int = 200) -> HttpResponse:
        nonce = nonce_issue(self.request)
        if form.is_bound:
            form.data = form.data.copy()
            form.data["nonce"] = nonce
        else:
            form.initial["nonce"] = nonce
        context = self.get_context_data(key=key, form=form)
        return no_store(render(self.request, self.template_name, context, status=status))

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = self.get_key(kwargs["key_id"])
        if not services.api_key_mintable_by(key=key, actor=request.user):
            messages.error(request, "Only its owner can rotate a personal key. You can revoke it.")
            return HttpResponseRedirect(self.key_url(key), status=303)
        return self.render_form(key, KeyRotateForm())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = self.get_key(kwargs["key_id"])
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(request, RESUBMITTED)
            return HttpResponseRedirect(self.keys_url(), status=303)
        form = KeyRotateForm(request.POST)
        if not form.is_valid():
            return self.render_form(key, form, status=400)
        try:
            new, token, old = services.api_key_rotate(
                key=key, actor=request.user, grace_period=form.cleaned_data["grace_period"]
            )
        except KeywardError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(self.key_url(key), status=303)
        return self.show_token(new, token, previous=old)


class KeyRevokeView(KeyPageMixin, TemplateView):
    template_name = "apikeys/key_revoke.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["key"] = self.get_key(kwargs["key_id"])
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = self.get_key(kwargs["key_id"])
        try:
            services.api_key_revoke(key=key, actor=request.user)
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Revoked “{key.name}” ({key.masked}). It works no more.")
        return HttpResponseRedirect(self.keys_url(), status=303)
