"""Template helpers the pages share."""

from __future__ import annotations

from django import template

from orgs.mixins import memberships_of

register = template.Library()


@register.simple_tag
def memberships_for(user):
    """Return the person's memberships for the organisation switcher."""
    return memberships_of(user)
