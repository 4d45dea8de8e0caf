"""Validation of the organisation's policy fields."""

from __future__ import annotations

from typing import Any

from config.errors import ValidationFailed
from config.rates import MalformedRate, parse_rate
from orgs.models import LeakResponse

MAX_LIFETIME_DAYS = 3650
MAX_QUOTA = 10**12


def _positive_int_or_none(value: Any, field: str, upper: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationFailed.on(field, "Enter a whole number, or leave empty for none.")
    try:
        number = int(value)
    except ValueError:
        raise ValidationFailed.on(field, "Enter a whole number, or leave empty for none.") from None
    if not 1 <= number <= upper:
        raise ValidationFailed.on(field, f"Enter a number from 1 to {upper}, or leave empty.")
    return number


def clean_policy(fields: dict[str, Any]) -> dict[str, Any]:
    """Return the policy fields validated and normalised, or raise ValidationFailed."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in fields.items():
        try:
            if name == "name":
                value = (value or "").strip() if isinstance(value, str) else None
                if not value or len(value) > 100:
                    raise ValidationFailed.on(name, "Use 1 to 100 characters.")
                cleaned[name] = value
            elif name in (
                "members_can_create_keys",
                "email_notices",
                "default_key_for_new_members",
            ):
                if not isinstance(value, bool):
                    raise ValidationFailed.on(name, "Must be true or false.")
                cleaned[name] = value
            elif name == "max_key_lifetime_days":
                cleaned[name] = _positive_int_or_none(value, name, MAX_LIFETIME_DAYS)
            elif name == "daily_request_quota":
                cleaned[name] = _positive_int_or_none(value, name, MAX_QUOTA)
            elif name in ("default_rate_limit", "dev_rate_limit", "publishable_rate_limit"):
                if value is None or value == "":
                    cleaned[name] = None
                else:
                    try:
                        cleaned[name] = parse_rate(value).text
                    except MalformedRate as exc:
                        raise ValidationFailed.on(name, str(exc)) from None
            elif name == "leak_response":
                if value not in LeakResponse.values:
                    choices = ", ".join(LeakResponse.values)
                    raise ValidationFailed.on(name, f"Choose one of: {choices}.")
                cleaned[name] = value
        except ValidationFailed as exc:
            errors.update(exc.extra.get("fields", {}))
    if errors:
        raise ValidationFailed(fields=errors)
    return cleaned
