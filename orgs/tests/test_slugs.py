"""An organisation's slug never names a fixed page under /orgs/ (`/orgs/new/`)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from audit.actors import Actor
from config.errors import ValidationFailed
from orgs.models import Organization
from orgs.services import RESERVED_SLUGS, free_slug, organization_create


def fixed_segments_under_orgs() -> set[str]:
    """Return every literal first segment after `orgs/` in the project's URL patterns."""
    found: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("orgs/"):
                segment = route.removeprefix("orgs/").split("/")[0]
                if segment and "<" not in segment:
                    found.add(segment)

    walk(get_resolver().url_patterns, "")
    return found


def test_every_fixed_page_under_orgs_is_a_reserved_slug():
    assert fixed_segments_under_orgs() <= RESERVED_SLUGS
    assert "new" in RESERVED_SLUGS


@pytest.mark.parametrize("slug", ["new", "NEW"])
def test_a_reserved_slug_is_refused(make_user, slug):
    with pytest.raises(ValidationFailed) as refused:
        organization_create(name="New", slug=slug, owner=make_user(), actor=Actor.system("t"))
    assert "slug" in refused.value.extra["fields"]
    assert not Organization.objects.exists()


def test_a_derived_slug_steps_around_a_reserved_one(db):
    assert free_slug("New") == "new-2"


def test_the_create_form_derives_a_reachable_slug(make_user):
    client = Client()
    client.force_login(make_user())
    response = client.post("/orgs/new/", {"name": "New", "slug": ""})
    org = Organization.objects.get(name="New")
    assert org.slug != "new"
    assert resolve(f"/orgs/{org.slug}/").url_name == "org-home"
    assert response.status_code == 302


def test_the_create_form_refuses_new_as_a_slug(make_user):
    client = Client()
    client.force_login(make_user())
    response = client.post("/orgs/new/", {"name": "Newco", "slug": "new"})
    assert response.status_code == 200
    assert "reserved" in response.content.decode()
    assert not Organization.objects.exists()
