"""Template helpers the pages share."""

from __future__ import annotations

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from orgs.selectors import memberships_of

register = template.Library()


@register.simple_tag
def memberships_for(user):
    """Return the person's memberships for the organisation switcher."""
    return memberships_of(user)


@register.filter
def ago(value):
    """Return how long ago `value` was, in words; "just now" under a minute."""
    if not value:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"
