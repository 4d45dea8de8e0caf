"""The webhooks settings page: endpoints, their deliveries, the secret once, tests, redelivery."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.generic import TemplateView, View

from config.errors import KeywardError
from events import services
from events.forms import EndpointEditForm, EndpointForm
from events.models import WebhookDelivery, WebhookEndpoint
from events.selectors import deliveries_of, endpoints_of
from orgs.mixins import OrgPageMixin, no_store, show_errors
from orgs.nonces import nonce_consume, nonce_issue
from orgs.roles import Permission

DELIVERIES_SHOWN = 20
RESUBMITTED = (
    "That form was already used (a reload or the back button), so nothing was done again. "
    "Secrets are shown only once."
)


class WebhookPageMixin(OrgPageMixin):
    required_permissions = (Permission.MANAGE_WEBHOOKS,)
    section = "webhooks"

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        endpoint = (
            endpoints_of(organization=self.organization)
            .select_related("organization")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None:
            raise Http404("No such webhook endpoint.")
        return endpoint

    def webhooks_url(self) -> str:
        return reverse("webhooks", kwargs={"slug": self.organization.slug})

    def redirect_back(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(self.webhooks_url(), status=303)

    def show_secret(self, endpoint: WebhookEndpoint, secret: str, *, rotated: bool = False):
        """Answer with the one page that ever shows this secret; no cache may keep it."""
        context = self.get_context_data(endpoint=endpoint, secret=secret, rotated=rotated)
        return no_store(render(self.request, "events/secret_once.html", context))


class WebhooksView(WebhookPageMixin, TemplateView):
    template_name = "events/webhooks.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        rows = []
        for endpoint in endpoints_of(organization=self.organization).order_by("created_at"):
            deliveries = list(deliveries_of(endpoint=endpoint)[:DELIVERIES_SHOWN])
            rows.append({"endpoint": endpoint, "deliveries": deliveries})
        context.update(rows=rows, rotate_nonce=nonce_issue(self.request))
        return context


class EndpointCreateView(WebhookPageMixin, View):
    template_name = "events/endpoint_form.html"

    def render_form(self, form: EndpointForm, status: int = 200) -> HttpResponse:
        nonce = nonce_issue(self.request)
        if form.is_bound:
            form.data = form.data.copy()
            form.data["nonce"] = nonce
        else:
            form.initial["nonce"] = nonce
        context = self.get_context_data(form=form, creating=True)
        return no_store(render(self.request, self.template_name, context, status=status))

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_form(EndpointForm())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(request, RESUBMITTED)
            return self.redirect_back()
        form = EndpointForm(request.POST)
        if not form.is_valid():
            return self.render_form(form, status=400)
        try:
            endpoint, secret = services.webhook_endpoint_create(
                organization=self.organization,
                actor=request.user,
                url=form.cleaned_data["url"],
                description=form.cleaned_data["description"],
                events=form.cleaned_data["events"],
            )
        except KeywardError as error:
            show_errors(form, error)
            return self.render_form(form, status=400)
        return self.show_secret(endpoint, secret)


class EndpointEditView(WebhookPageMixin, View):
    template_name = "events/endpoint_form.html"

    def render_form(self, endpoint, form: EndpointEditForm, status: int = 200) -> HttpResponse:
        context = self.get_context_data(form=form, endpoint=endpoint, creating=False)
        return render(self.request, self.template_name, context, status=status)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        endpoint = self.get_endpoint(kwargs["endpoint_id"])
        form = EndpointEditForm(
            initial={
                "url": endpoint.url,
                "description": endpoint.description,
                "events": endpoint.events,
                "enabled": endpoint.enabled,
            }
        )
        return self.render_form(endpoint, form)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        endpoint = self.get_endpoint(kwargs["endpoint_id"])
        form = EndpointEditForm(request.POST)
        if not form.is_valid():
            return self.render_form(endpoint, form, status=400)
        try:
            services.webhook_endpoint_update(
                endpoint=endpoint,
                actor=request.user,
                **{name: form.cleaned_data[name] for name in services.UPDATABLE_FIELDS},
            )
        except KeywardError as error:
            show_errors(form, error)
            return self.render_form(endpoint, form, status=400)
        messages.success(request, f"Saved {endpoint.url}.")
        return self.redirect_back()


class EndpointDeleteView(WebhookPageMixin, TemplateView):
    template_name = "events/endpoint_delete.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["endpoint"] = self.get_endpoint(kwargs["endpoint_id"])
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        endpoint = self.get_endpoint(kwargs["endpoint_id"])
        try:
            services.webhook_endpoint_delete(endpoint=endpoint, actor=request.user)
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Deleted the endpoint {endpoint.url}.")
        return self.redirect_back()


class EndpointTestView(WebhookPageMixin, View):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        endpoint = self.get_endpoint(kwargs["endpoint_id"])
        try:
            services.webhook_endpoint_test(endpoint=endpoint, actor=request.user)
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, f"A webhook.test event is on its way to {endpoint.url}. Reload to see it."
            )
        return self.redirect_back()


class EndpointRotateSecretView(WebhookPageMixin, View):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        endpoint = self.get_endpoint(kwargs["endpoint_id"])
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(request, RESUBMITTED)
            return self.redirect_back()
        try:
            endpoint, secret = services.webhook_endpoint_rotate_secret(
                endpoint=endpoint, actor=request.user
            )
        except KeywardError as error:
            messages.error(request, error.message)
            return self.redirect_back()
        return self.show_secret(endpoint, secret, rotated=True)


class DeliveryRedeliverView(WebhookPageMixin, View):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        delivery = (
            WebhookDelivery.objects.filter(pk=kwargs["delivery_id"], organization=self.organization)
            .select_related("event", "endpoint")
            .first()
        )
        if delivery is None:
            raise Http404("No such delivery.")
        try:
            services.webhook_delivery_redeliver(delivery=delivery, actor=request.user)
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"{delivery.event.type} ({delivery.event_id}) is on its way again to "
                f"{delivery.endpoint.url}, with the same webhook-id.",
            )
        return self.redirect_back()
