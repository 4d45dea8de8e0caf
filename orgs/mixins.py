"""What every organisation page shares: who may open it, and how forms show service errors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.utils.cache import add_never_cache_headers
from django.views.generic.base import ContextMixin

from config.errors import KeywardError
from orgs.models import Membership, Organization
from orgs.roles import Permission, RolePolicy
from orgs.selectors import membership_by_slug


class OrgPageMixin(LoginRequiredMixin, ContextMixin):
    """Resolve the organisation in the URL and the visitor's membership in it.

    No membership answers 404, exactly as if the organisation did not exist;
    a membership whose role lacks the page's permissions answers 403.
    Subclasses name `required_permissions` (any one suffices) or override `has_access`.
    """

    required_permissions: tuple[Permission, ...] = ()
    section: str = ""

    organization: Organization
    membership: Membership
    policy: RolePolicy

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = membership_by_slug(user=request.user, slug=kwargs.get("slug"))
        if membership is None:
            raise Http404("No such organisation.")
        self.membership = membership
        self.organization = membership.organization
        self.policy = membership.policy
        if not self.has_access(self.policy):
            raise PermissionDenied("Your role does not give access to this page.")
        return super().dispatch(request, *args, **kwargs)

    def has_access(self, policy: RolePolicy) -> bool:
        """Return whether a member with `policy` may open this page."""
        return any(policy.can(p) for p in self.required_permissions)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            organization=self.organization,
            membership=self.membership,
            section=self.section,
            nav=page_nav(self.policy),
        )
        return context


def page_nav(policy: RolePolicy) -> dict[str, bool]:
    """Return which settings tabs a member with `policy` sees."""
    return {
        "keys": policy.can(Permission.MANAGE_ORG_KEYS)
        or policy.can(Permission.CREATE_PERSONAL_KEYS),
        "members": policy.can(Permission.MANAGE_MEMBERS),
        "audit": policy.can(Permission.READ_AUDIT_LOG),
        "policy": policy.can(Permission.MANAGE_POLICY),
        "webhooks": policy.can(Permission.MANAGE_WEBHOOKS),
    }


def show_errors(form: forms.Form, error: KeywardError, field_map: dict[str, str] | None = None):
    """Put a service's error on the form: each field's messages next to that field."""
    field_map = field_map or {}
    fields = error.extra.get("fields") or {}
    if not fields:
        form.add_error(None, error.message)
        return
    for name, messages in fields.items():
        target = field_map.get(name, name)
        for message in messages:
            form.add_error(target if target in form.fields else None, message)


def no_store(response):
    """Mark a response that shows a secret as never to be stored by any cache."""
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    response["Pragma"] = "no-cache"
    return response
