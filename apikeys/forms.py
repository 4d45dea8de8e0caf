"""Forms of the key pages: they gather input; `apikeys.services` decides what is valid."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms

from apikeys.models import Environment, Kind
from orgs import scopes as scope_registry
from orgs.models import Organization

EXPIRY_DAYS = (30, 90, 365)
GRACE_CHOICES = [
    ("0", "Now: the old key stops working at once"),
    ("3600", "In 1 hour"),
    ("86400", "In 24 hours"),
    ("604800", "In 7 days"),
]


class KeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="Say where the key is used, like “CI pipeline (staging)”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    kind = forms.ChoiceField(
        label="Belongs to",
        choices=[
            ("organization", "The organisation: it outlives any one person"),
            ("personal", "Me: it stops working if I leave"),
        ],
        initial="organization",
        widget=forms.RadioSelect,
    )
    key_kind = forms.ChoiceField(
        label="Kind of key",
        choices=[
            (Kind.SECRET, "Secret: for servers, CI pipelines and scripts. Keep it private."),
            (
                Kind.PUBLISHABLE,
                "Publishable: for code in a web page or an app. Public scopes only, "
                "from the origins you list.",
            ),
        ],
        initial=Kind.SECRET,
        required=False,
        widget=forms.RadioSelect,
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    allowed_origins = forms.CharField(
        label="Allowed origins",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "https://shop.example.com\nhttps://*.example.com"}
        ),
        help_text=(
            "Publishable keys only: the sites whose pages may use it, one per line, like "
            "https://shop.example.com or https://*.example.com for its subdomains. No paths."
        ),
    )
    environment = forms.ChoiceField(
        label="Environment",
        choices=Environment.choices,
        initial=Environment.LIVE,
        widget=forms.RadioSelect,
    )
    expiry = forms.ChoiceField(label="Expires", initial="never")
    expiry_date = forms.DateField(
        label="Expiry date (UTC)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Used when “On a date” is chosen; the key expires at 00:00 UTC that day.",
    )
    allowed_ips = forms.CharField(
        label="Allowed addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24\n2001:db8::/32"}),
        help_text="One CIDR block per line. Leave empty to allow any address.",
    )
    rate_limit = forms.CharField(
        label="Rate limit",
        required=False,
        help_text="Like 600/min or 10/s. Leave empty for the organisation's default.",
    )
    nonce = forms.CharField(widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        organization: Organization,
        grantable: frozenset[str],
        may_create_org_keys: bool,
        resource_options: dict[str, list[tuple[str, str]]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        registry = scope_registry.registered_scopes()
        self.scope_descriptions = registry
        self.public_scopes = scope_registry.public_scopes()
        self.resource_types = list(resource_options or {})
        for resource_type, options in (resource_options or {}).items():
            self.fields[f"resources_{resource_type}"] = forms.MultipleChoiceField(
                label=f"Limit to these {resource_type}",
                required=False,
                choices=options,
                widget=forms.CheckboxSelectMultiple,
                help_text=f"Tick none to let the key reach every one of the {resource_type}.",
            )
        self.fields["scopes"].choices = [
            (name, name) for name in scope_registry.ordered(grantable) if name in registry
        ]
        if not may_create_org_keys:
            del self.fields["kind"]
        cap = organization.max_key_lifetime_days
        choices = [("never", "Never" if cap is None else f"At the longest allowed ({cap} days)")]
        choices += [(str(d), f"In {d} days") for d in EXPIRY_DAYS if cap is None or d <= cap]
        choices.append(("date", "On a date…"))
        self.fields["expiry"].choices = choices
        self.lifetime_cap = cap

    def scope_options(self) -> list[dict[str, Any]]:
        """Return each scope's checkbox with its registry description, for the template."""
        chosen = set(self["scopes"].value() or [])
        return [
            {
                "name": name,
                "description": self.scope_descriptions.get(name, ""),
                "public": name in self.public_scopes,
                "checked": name in chosen,
                "id": f"id_scope_{re.sub(r'[^a-z0-9]', '_', name)}",
            }
            for name, _label in self.fields["scopes"].choices
        ]

    def resource_fields(self) -> list[forms.BoundField]:
        """Return the checkbox group of each registered resource type, for the template."""
        return [self[f"resources_{name}"] for name in self.resource_types]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("expiry") == "date" and not cleaned.get("expiry_date"):
            self.add_error("expiry_date", "Choose the date the key expires.")
        return cleaned

    def expires_at(self, now: datetime) -> datetime | None:
        """Return the chosen expiry; None leaves it to the service (never, or the cap)."""
        choice = self.cleaned_data["expiry"]
        if choice == "never":
            return None
        if choice == "date":
            return datetime.combine(self.cleaned_data["expiry_date"], time.min, tzinfo=UTC)
        return now + timedelta(days=int(choice))

    def service_fields(self, now: datetime) -> dict[str, Any]:
        """Return the keyword arguments for `api_key_create`, bar organisation and actor."""
        data = self.cleaned_data
        blocks = [b.strip() for b in re.split(r"[\s,]+", data.get("allowed_ips") or "")]
        origins = [o.strip() for o in re.split(r"[\s,]+", data.get("allowed_origins") or "")]
        resources = {
            name: list(data[f"resources_{name}"])
            for name in self.resource_types
            if data.get(f"resources_{name}")
        }
        return {
            "name": data["name"],
            "kind": data.get("key_kind") or Kind.SECRET,
            "scopes": list(data["scopes"]),
            "environment": data["environment"],
            "expires_at": self.expires_at(now),
            "allowed_ips": [b for b in blocks if b],
            "allowed_origins": [o for o in origins if o],
            "resources": resources or None,
            "rate_limit": data.get("rate_limit") or None,
        }

    @property
    def is_personal(self) -> bool:
        return "kind" not in self.fields or self.cleaned_data.get("kind") == "personal"


class KeyRotateForm(forms.Form):
    grace_period = forms.TypedChoiceField(
        label="When should the old key stop working?",
        choices=GRACE_CHOICES,
        coerce=int,
        initial="3600",
        widget=forms.RadioSelect,
    )
    nonce = forms.CharField(widget=forms.HiddenInput)
