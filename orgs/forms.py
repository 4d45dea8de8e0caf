"""Forms of the sign-in, sign-up, members and policy pages; the rules stay in services."""

from __future__ import annotations

from django import forms
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.forms import PasswordResetForm as DjangoPasswordResetForm
from django.core.exceptions import ValidationError

from orgs.backends import request_ip
from orgs.models import LeakResponse, User, canonical_email
from orgs.roles import Role
from orgs.throttle import LoginThrottle, PasswordResetThrottle


class LoginForm(AuthenticationForm):
    """Email and password, refused for a while after too many failures (orgs/backends.py)."""

    throttle = LoginThrottle()

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account.",
        # A reset gives the account fresh counters, so offering it is true here...
        "throttled_account": (
            "Too many failed attempts to log in to this account from your address. "
            "Wait 15 minutes, or reset your password."
        ),
        # ...and not here: the address is locked whatever the account.
        "throttled_address": (
            "Too many failed attempts from your address. Wait 15 minutes and try again."
        ),
        "unverified": (
            "Confirm your email address first: open the link we sent to %(email)s. "
            "To get a new link, sign up again with the same address."
        ),
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget = forms.EmailInput(
            attrs={"autocomplete": "email", "autofocus": True}
        )

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        if email:
            blocked = self.throttle.blocked(ip=request_ip(self.request), email=email)
            if blocked:
                raise ValidationError(self.error_messages[f"throttled_{blocked}"], code="throttled")
        return super().clean()

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_email_verified:
            raise ValidationError(
                self.error_messages["unverified"], code="unverified", params={"email": user.email}
            )


class PasswordResetForm(DjangoPasswordResetForm):
    """Send a reset link: at most 5 an hour from one address and 3 an hour to one address."""

    throttle = PasswordResetThrottle()

    error_messages = {
        "throttled_address": "Too many reset requests from your address. Try again in an hour.",
        "throttled_email": "Too many reset links were sent to this address. Try again in an hour.",
    }

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_email(self):
        email = self.cleaned_data["email"]
        refused = self.throttle.hit(ip=request_ip(self.request), email=email)
        if refused:
            raise ValidationError(self.error_messages[f"throttled_{refused}"], code="throttled")
        return email

    def get_users(self, email):
        """Return the active person with this canonical address (an unverified one too).

        A reset proves that its reader holds the address, so it also verifies it.
        """
        return (
            user
            for user in User.objects.filter(email=canonical_email(email), is_active=True)
            if user.has_usable_password()
        )


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

    field_order = ["email", "organization_name", "password"]

    def clean_email(self):
        return canonical_email(self.cleaned_data["email"])


class SignupConfirmForm(forms.Form):
    """The password chosen at sign-up, typed again to confirm the address.

    Holding the link proves the mailbox; typing the password proves that the
    mailbox's owner is whoever chose it, so nobody can sign up with another
    person's address, wait for them to open the link, and log in as them.
    """

    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
        help_text="The one you chose when you signed up.",
    )

    throttle = LoginThrottle()

    def __init__(self, *args, request=None, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        blocked = self.throttle.blocked(ip=request_ip(self.request), email=self.user.email)
        if blocked:
            raise ValidationError(
                LoginForm.error_messages[f"throttled_{blocked}"], code="throttled"
            )
        if authenticate(self.request, username=self.user.email, password=password) is None:
            raise ValidationError(
                "That is not the password chosen when this address signed up. Forgot it? "
                "Sign up again with the same address to choose a new one.",
                code="invalid_login",
            )
        return password


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
    email_notices = forms.BooleanField(
        label="Email notices",
        required=False,
        help_text=(
            "Email a key's owner (for an organisation key: owners and admins) 7 days and "
            "1 day before it expires, when it expires, when it leaks, and when its secret "
            "is being guessed. Webhooks are sent either way."
        ),
    )
    leak_response = forms.ChoiceField(
        label="When a key is reported as leaked",
        choices=LeakResponse.choices,
        required=False,
        help_text="Revoking at once is safest; either way the key is flagged and people are told.",
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

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("leak_response"):  # not sent: leave the policy as it is
            cleaned.pop("leak_response", None)
        return cleaned
