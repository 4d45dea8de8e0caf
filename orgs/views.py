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
from orgs import services, verification
from orgs.backends import request_ip
from orgs.forms import (
    InvitationSignupForm,
    InviteForm,
    LoginForm,
    OrganizationCreateForm,
    PasswordResetForm,
    PolicyForm,
    RoleForm,
    SignupConfirmForm,
    SignupForm,
)
from orgs.mixins import OrgPageMixin, no_store, page_nav, show_errors
from orgs.models import Invitation, Membership, Organization, User, canonical_email
from orgs.nonces import nonce_consume, nonce_issue
from orgs.roles import Permission, Role, RolePolicy
from orgs.selectors import (
    free_slug,
    invitation_find,
    invitations_pending,
    membership_by_slug,
    memberships_of,
    organization_members,
)
from orgs.throttle import SignupThrottle

AUTH_BACKEND = "orgs.backends.EmailBackend"
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
    membership = membership_by_slug(user=request.user, slug=slug)
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
    """Sign up: the same answer whether or not the address has an account (see user_signup)."""

    form_class = SignupForm
    template_name = "registration/signup.html"
    throttle = SignupThrottle()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect("home")
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form: SignupForm) -> HttpResponse:
        # Nothing is minted here (the DefaultKey waits for the confirmation link, which
        # works once), so a re-submitted form needs no one-time nonce.
        email = form.cleaned_data["email"]
        refused = self.throttle.hit(ip=request_ip(self.request), email=email)
        if refused:
            form.add_error(None, SIGNUP_THROTTLED[refused])
            return self.render_to_response(self.get_context_data(form=form), status=429)
        build = self.request.build_absolute_uri
        try:
            services.user_signup(
                email=email,
                password=form.cleaned_data["password"],
                organization_name=form.cleaned_data["organization_name"],
                link_for=lambda token: build(reverse("signup-confirm", kwargs={"token": token})),
                login_link=build(reverse("login")),
                reset_link=build(reverse("password_reset")),
            )
        except KeywardError as error:
            show_errors(form, error)
            return self.form_invalid(form)
        return no_store(render(self.request, "registration/signup_sent.html", {"email": email}))


SIGNUP_THROTTLED = {
    SignupThrottle.ADDRESS: "Too many sign-ups from your address. Try again in an hour.",
    SignupThrottle.EMAIL: "Too many confirmation emails went to this address. "
    "Try again in an hour.",
}


class SignupConfirmView(FormView):
    """Open the link from the sign-up email and type the password again: the account is yours.

    Opening the link (GET) changes nothing, so that mail scanners that follow
    links cannot use it up; the form posts the password.
    """

    form_class = SignupConfirmForm
    template_name = "registration/signup_confirm.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.claim = verification.read_token(kwargs["token"])
        if self.claim is None:
            return no_store(render(request, "registration/signup_confirm_invalid.html", status=404))
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request, "user": self.claim.user}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(claim=self.claim, **kwargs)

    def form_valid(self, form: SignupConfirmForm) -> HttpResponse:
        default_key = None
        try:
            with transaction.atomic():  # the DefaultKey is made with the organisation, or neither
                user, organization = services.user_email_verify(
                    token=self.kwargs["token"], user=form.user
                )
                if organization is not None:
                    default_key = api_key_create_default(organization=organization, user=user)
        except KeywardError as error:
            form.add_error(None, error.message)
            return self.form_invalid(form)
        login(self.request, user, backend=AUTH_BACKEND)
        if organization is None:
            return redirect("home")
        messages.success(self.request, f"Welcome to Keyward. {organization.name} is ready.")
        if default_key is not None:
            membership = Membership.objects.select_related("organization").get(
                organization=organization, user=user
            )
            return welcome_key_page(self.request, membership, *default_key)
        return redirect("keys", slug=organization.slug)

    def form_invalid(self, form: SignupConfirmForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        return no_store(super().render_to_response(context, **kwargs))


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset form, throttled per address and per target address."""

    form_class = PasswordResetForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_invalid(self, form: PasswordResetForm) -> HttpResponse:
        throttled = any(e.code == "throttled" for e in form.errors.as_data().get("email", []))
        return self.render_to_response(
            self.get_context_data(form=form), status=429 if throttled else 200
        )


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's new-password form; success also verifies the address and lifts login locks."""

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        services.user_password_reset_complete(user=form.user)
        return response


class OrganizationCreateView(LoginRequiredMixin, FormView):
    form_class = OrganizationCreateForm
    template_name = "orgs/org_create.html"

    def form_valid(self, form: OrganizationCreateForm) -> HttpResponse:
        name = form.cleaned_data["name"]
        try:
            organization = services.organization_create(
                name=name,
                slug=form.cleaned_data["slug"] or free_slug(name),
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
        for membership in organization_members(organization=self.organization):
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
            for invitation in invitations_pending(organization=self.organization)
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
        existing = User.objects.filter(
            email=canonical_email(invitation.email), email_verified_at__isnull=False
        ).exists()
        context = {
            "invitation": invitation,
            "form": form,
            "account_exists": existing,
            "wrong_person": user.is_authenticated
            and canonical_email(user.email) != canonical_email(invitation.email),
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
        invitation = invitation_find(token)
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
            if User.objects.filter(
                email=canonical_email(invitation.email), email_verified_at__isnull=False
            ).exists():
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
