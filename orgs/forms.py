"""Forms of the sign-in, sign-up, members and policy pages; the rules stay in services."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from orgs.models import User
from orgs.roles import Role
from orgs.throttle import LoginThrottle


class LoginForm(AuthenticationForm):
    """Email and password, refused for a while after too many failures."""

    throttle = LoginThrottle()

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account.",
        "throttled": "Too many failed attempts. Wait 15 minutes, or reset your password.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget = forms.EmailInput(
            attrs={"autocomplete": "email", "autofocus": True}
        )

    def _client_ip(self) -> str | None:
        request = self.request
        if request is None:
            return None
        return getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR")

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        ip = self._client_ip()
        if email and self.throttle.is_blocked(ip=ip, email=email):
            raise ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            if email:
                self.throttle.record_failure(ip=ip, email=email)
            raise
        self.throttle.reset_account(email=email)
        return cleaned


class PasswordField(forms.CharField):
    widget = forms.PasswordInput(attrs={"autocomplete": "new-password"})

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Password")
        kwargs.setdefault("strip", False)
        kwargs.setdefault("help_text", "At least 8 characters; not a common password.")
        super().__init__(**kwargs)


class NewPasswordMixin:
    """Check the chosen password against Django's validators, for this email."""

    def clean_password(self):
        password = self.cleaned_data["password"]
        email = self.cleaned_data.get("email") or getattr(self, "fixed_email", "")
        password_validation.validate_password(password, User(email=email))
        return password


class SignupForm(NewPasswordMixin, forms.Form):
    email = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    password = PasswordField()
    organization_name = forms.CharField(
        label="Organisation name",
        max_length=100,
        help_text="Your company or team. You can invite others once it exists.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    nonce = forms.CharField(widget=forms.HiddenInput)

    field_order = ["email", "organization_name", "password"]

    def clean_email(self):
        return self.cleaned_data["email"].strip().lower()


class InvitationSignupForm(NewPasswordMixin, forms.Form):
    password = PasswordField(label="Choose a password")
    nonce = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, fixed_email: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fixed_email = fixed_email


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(label="Organisation name", max_length=100)
    slug = forms.CharField(
        label="URL name",
        max_length=50,
        required=False,
        help_text="Letters, numbers and hyphens, used in addresses. Leave empty to derive it.",
    )


def role_choices(assignable: list[str]) -> list[tuple[str, str]]:
    return [(value, label) for value, label in Role.choices if value in assignable]


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(label="Role")
    nonce = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, assignable: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(assignable)
        self.fields["role"].initial = Role.MEMBER


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, assignable: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(assignable)


class PolicyForm(forms.Form):
    """The policy fields; `organization_update` decides what is valid."""

    max_key_lifetime_days = forms.CharField(
        label="Maximum key lifetime (days)",
        required=False,
        help_text="New keys must expire within this many days. Leave empty for no limit.",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    members_can_create_keys = forms.BooleanField(
        label="Members may create personal keys",
        required=False,
        help_text="Members' keys never carry keys:write, members:write, audit:read or admin.",
    )
    daily_request_quota = forms.CharField(
        label="Daily request quota",
        required=False,
        help_text="Requests per UTC day across all live keys. Leave empty for none.",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    default_rate_limit = forms.CharField(
        label="Default rate limit",
        required=False,
        help_text="For keys without their own limit, like 600/min, 10/s, 5000/h or 100000/day.",
    )
    dev_rate_limit = forms.CharField(
        label="Dev key rate limit",
        required=False,
        help_text=(
            "For dev keys (kw_dev_) without their own limit: the powers of a live key, "
            "rate-limited harder. Leave empty to use the default rate limit."
        ),
    )
    publishable_rate_limit = forms.CharField(
        label="Publishable key limit per visitor",
        required=False,
        help_text=(
            "What each client address may do with one publishable key (kw_pub_), on top of "
            "the key's own limit. Leave empty for no per-address limit."
        ),
    )
    default_key_for_new_members = forms.BooleanField(
        label="Give new members a DefaultKey",
        required=False,
        help_text=(
            "Whoever signs up or accepts an invitation, and may hold personal keys, gets a "
            "personal key named DefaultKey with the default scopes, shown once."
        ),
    )
