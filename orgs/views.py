"""Pages for getting in and for an organisation's people and policy."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.generic import FormView, TemplateView, View

from apikeys.services import api_key_create_default
from config.errors import KeywardError
from orgs import services
from orgs.forms import (
    InvitationSignupForm,
    InviteForm,
    LoginForm,
    OrganizationCreateForm,
    PolicyForm,
    RoleForm,
    SignupForm,
)
from orgs.mixins import OrgPageMixin, memberships_of, no_store, page_nav, show_errors
from orgs.models import Invitation, Membership, Organization, User
from orgs.nonces import nonce_consume, nonce_issue
from orgs.roles import Permission, Role, RolePolicy

AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"
RESUBMITTED = "That form was already used (a reload or the back button), so nothing was done."


def first_page_for(membership: Membership) -> str | None:
    """Return the first settings page the member may open in their organisation."""
    policy = membership.policy
    slug = membership.organization.slug
    if policy.can(Permission.MANAGE_ORG_KEYS) or policy.can(Permission.CREATE_PERSONAL_KEYS):
        return reverse("keys", kwargs={"slug": slug})
    if policy.can(Permission.MANAGE_MEMBERS):
        return reverse("members", kwargs={"slug": slug})
    return None


def welcome_key_page(request: HttpRequest, membership: Membership, key: Any, token: str):
    """Answer with the one page that shows a new member's DefaultKey token; no cache keeps it."""
    context = {
        "organization": membership.organization,
        "membership": membership,
        "nav": page_nav(membership.policy),
        "key": key,
        "token": token,
        "next_url": first_page_for(membership) or reverse("home"),
    }
    return no_store(render(request, "orgs/welcome_key.html", context))


def home(request: HttpRequest) -> HttpResponse:
    """Send a visitor to their first organisation's keys page, or to log in."""
    if not request.user.is_authenticated:
        return redirect("login")
    memberships = memberships_of(request.user)
    for membership in memberships:
        url = first_page_for(membership)
        if url:
            return redirect(url)
    return render(request, "orgs/home.html", {"memberships": memberships})


def org_home(request: HttpRequest, slug: str) -> HttpResponse:
    """Open an organisation at the first page the visitor may see."""
    if not request.user.is_authenticated:
        return redirect(f"{reverse('login')}?next={request.path}")
    membership = (
        Membership.objects.select_related("organization")
        .filter(organization__slug=slug, user=request.user)
        .first()
    )
    if membership is None:
        raise Http404("No such organisation.")
    url = first_page_for(membership)
    if url:
        return redirect(url)
    return render(request, "orgs/home.html", {"memberships": [membership]})


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class SignupView(FormView):
    form_class = SignupForm
    template_name = "registration/signup.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect("home")
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        return {"nonce": nonce_issue(self.request)}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(request, RESUBMITTED)
            return HttpResponseRedirect(reverse("signup"), status=303)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: SignupForm) -> HttpResponse:
        form.data = form.data.copy()
        form.data["nonce"] = nonce_issue(self.request)
        return super().form_invalid(form)

    def form_valid(self, form: SignupForm) -> HttpResponse:
        try:
            with transaction.atomic():
                user, organization = services.user_signup(
                    email=form.cleaned_data["email"],
                    password=form.cleaned_data["password"],
                    organization_name=form.cleaned_data["organization_name"],
                )
                default_key = api_key_create_default(organization=organization, user=user)
        except KeywardError as error:
            show_errors(form, error, {"name": "organization_name", "slug": "organization_name"})
            return self.form_invalid(form)
        login(self.request, user, backend=AUTH_BACKEND)
        messages.success(self.request, f"Welcome to Keyward. {organization.name} is ready.")
        if default_key is not None:
            membership = Membership.objects.select_related("organization").get(
                organization=organization, user=user
            )
            return welcome_key_page(self.request, membership, *default_key)
        return redirect("keys", slug=organization.slug)


class OrganizationCreateView(LoginRequiredMixin, FormView):
    form_class = OrganizationCreateForm
    template_name = "orgs/org_create.html"

    def form_valid(self, form: OrganizationCreateForm) -> HttpResponse:
        name = form.cleaned_data["name"]
        try:
            organization = services.organization_create(
                name=name,
                slug=form.cleaned_data["slug"] or services.free_slug(name),
                owner=self.request.user,
            )
        except KeywardError as error:
            show_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"{organization.name} is ready.")
        return redirect("keys", slug=organization.slug)


def _assignable(policy: RolePolicy) -> list[str]:
    return [role for role in Role.values if policy.can_assign(role)]


class MembersView(OrgPageMixin, TemplateView):
    template_name = "orgs/members.html"
    required_permissions = (Permission.MANAGE_MEMBERS,)
    section = "members"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        assignable = _assignable(self.policy)
        rows = []
        memberships = (
            Membership.objects.filter(organization=self.organization)
            .select_related("user")
            .order_by("created_at", "pk")
        )
        for membership in memberships:
            manageable = self.policy.can_manage_member(membership.role)
            rows.append(
                {
                    "membership": membership,
                    "is_me": membership.user_id == self.request.user.pk,
                    "manageable": manageable,
                    "role_form": RoleForm(
                        initial={"role": membership.role},
                        assignable=assignable,
                        prefix=f"m{membership.pk}",
                    )
                    if manageable
                    else None,
                }
            )
        invitations = [
            {"invitation": invitation, "can_withdraw": self.policy.can_assign(invitation.role)}
            for invitation in Invitation.objects.filter(
                organization=self.organization,
                accepted_at__isnull=True,
                revoked_at__isnull=True,
            ).order_by("-created_at")
            if invitation.is_pending
        ]
        form = kwargs.get("invite_form") or InviteForm(assignable=assignable)
        if not form.is_bound:
            form.initial["nonce"] = nonce_issue(self.request)
        context.update(
            rows=rows,
            invitations=invitations,
            invite_form=form,
        )
        return context


class MemberInviteView(MembersView):
    """Invite by email; the link appears once, on this response, and goes by email."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return redirect("members", slug=self.organization.slug)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        members_url = reverse("members", kwargs={"slug": self.organization.slug})
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(
                request, "That form was already used, so no second invitation was sent."
            )
            return HttpResponseRedirect(members_url, status=303)
        form = InviteForm(request.POST, assignable=_assignable(self.policy))
        if form.is_valid():
            try:
                invitation, token = services.invitation_create(
                    organization=self.organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    actor=request.user,
                    link_for=lambda t: request.build_absolute_uri(
                        reverse("invitation-accept", kwargs={"token": t})
                    ),
                )
            except KeywardError as error:
                show_errors(form, error)
            else:
                link = request.build_absolute_uri(
                    reverse("invitation-accept", kwargs={"token": token})
                )
                context = self.get_context_data(new_invitation=invitation, invitation_link=link)
                return no_store(render(request, self.template_name, context))
        form.data = form.data.copy()
        form.data["nonce"] = nonce_issue(request)
        context = self.get_context_data(invite_form=form)
        return render(request, self.template_name, context, status=400)


class MemberActionMixin(OrgPageMixin):
    required_permissions = (Permission.MANAGE_MEMBERS,)
    section = "members"

    def get_membership(self) -> Membership:
        return get_object_or_404(
            Membership.objects.select_related("user", "organization"),
            pk=self.kwargs["membership_id"],
            organization=self.organization,
        )

    def members_url(self) -> str:
        return reverse("members", kwargs={"slug": self.organization.slug})


class MemberRoleView(MemberActionMixin, View):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = self.get_membership()
        form = RoleForm(
            request.POST, assignable=_assignable(self.policy), prefix=f"m{membership.pk}"
        )
        if not form.is_valid():
            messages.error(request, "Choose a role you may give.")
            return HttpResponseRedirect(self.members_url(), status=303)
        try:
            services.membership_role_change(
                membership=membership, role=form.cleaned_data["role"], actor=request.user
            )
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"{membership.user.email} is now {Role(form.cleaned_data['role']).label.lower()}.",
            )
        return HttpResponseRedirect(self.members_url(), status=303)


class MemberRemoveView(MemberActionMixin, TemplateView):
    template_name = "orgs/member_remove.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        membership = self.get_membership()
        context.update(
            target=membership,
            personal_keys=membership.user.personal_api_keys.filter(
                organization=self.organization, revoked_at__isnull=True
            ).count(),
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = self.get_membership()
        try:
            services.membership_remove(membership=membership, actor=request.user)
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"Removed {membership.user.email}; their personal keys here are revoked.",
            )
        return HttpResponseRedirect(self.members_url(), status=303)


class InvitationRevokeView(MemberActionMixin, View):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        invitation = get_object_or_404(
            Invitation, pk=kwargs["invitation_id"], organization=self.organization
        )
        try:
            services.invitation_revoke(invitation=invitation, actor=request.user)
        except KeywardError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Withdrew the invitation to {invitation.email}.")
        return HttpResponseRedirect(self.members_url(), status=303)


class InvitationAcceptView(View):
    """Join an organisation from an invitation link: log in, or sign up, with its address."""

    template_name = "orgs/invitation_accept.html"

    def render_page(self, invitation, form=None, status=200, error="") -> HttpResponse:
        user = self.request.user
        existing = User.objects.filter(email__iexact=invitation.email).exists()
        context = {
            "invitation": invitation,
            "form": form,
            "account_exists": existing,
            "wrong_person": user.is_authenticated
            and user.email.lower() != invitation.email.lower(),
            "login_url": f"{reverse('login')}?next={self.request.path}",
            "error": error,
            "nonce": nonce_issue(self.request),
        }
        if form is not None and form.is_bound:
            form.data = form.data.copy()
            form.data["nonce"] = context["nonce"]
        elif form is not None:
            form.initial["nonce"] = context["nonce"]
        return no_store(render(self.request, self.template_name, context, status=status))

    def find(self, token: str) -> Invitation:
        invitation = services.invitation_find(token)
        if invitation is None:
            raise Http404("This invitation link is not valid.")
        return invitation

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = self.find(token)
        form = None
        if not request.user.is_authenticated:
            form = InvitationSignupForm(fixed_email=invitation.email)
        return self.render_page(invitation, form)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = self.find(token)
        if not nonce_consume(request, request.POST.get("nonce")):
            messages.warning(request, RESUBMITTED)
            return HttpResponseRedirect(request.path, status=303)
        user = request.user if request.user.is_authenticated else None
        form = None
        if user is None:
            if User.objects.filter(email__iexact=invitation.email).exists():
                return self.render_page(invitation, status=400)
            form = InvitationSignupForm(request.POST, fixed_email=invitation.email)
            if not form.is_valid():
                return self.render_page(invitation, form, status=400)
        try:
            with transaction.atomic():
                membership = services.invitation_accept(
                    token=token,
                    user=user,
                    password=form.cleaned_data["password"] if form else None,
                )
                default_key = api_key_create_default(
                    organization=membership.organization, user=membership.user
                )
        except KeywardError as error:
            if form is None:
                return self.render_page(invitation, status=400, error=error.message)
            show_errors(form, error)
            return self.render_page(invitation, form, status=400)
        if user is None:
            login(request, membership.user, backend=AUTH_BACKEND)
        messages.success(request, f"You joined {membership.organization.name}.")
        if default_key is not None:
            return welcome_key_page(request, membership, *default_key)
        return redirect("org-home", slug=membership.organization.slug)


class PolicyView(OrgPageMixin, FormView):
    template_name = "orgs/policy.html"
    form_class = PolicyForm
    required_permissions = (Permission.MANAGE_POLICY,)
    section = "policy"

    def get_initial(self) -> dict[str, Any]:
        organization = self.organization
        return {
            name: "" if getattr(organization, name) is None else getattr(organization, name)
            for name in Organization.POLICY_FIELDS
        }

    def form_valid(self, form: PolicyForm) -> HttpResponse:
        try:
            services.organization_update(
                organization=self.organization, actor=self.request.user, **form.cleaned_data
            )
        except KeywardError as error:
            show_errors(form, error)
            return self.render_to_response(self.get_context_data(form=form), status=400)
        messages.success(self.request, "Policy saved.")
        return redirect("policy", slug=self.organization.slug)

    def form_invalid(self, form: PolicyForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)
