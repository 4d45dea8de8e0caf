"""Fixtures every app's tests share: people, organisations, keys and API clients."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apikeys.activity import key_activity
from apikeys.cache import clear_shared_cache_for_tests, verified_keys
from apikeys.services import api_key_create
from audit.actors import Actor
from orgs.models import Membership, Organization, User
from orgs.roles import Role
from orgs.services import membership_add, organization_create

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Start every test with empty caches: nothing leaks from one test into the next."""
    verified_keys.clear()
    clear_shared_cache_for_tests()  # cache.clear(), keeping this process's lease
    key_activity.discard()
    yield
    verified_keys.clear()


@pytest.fixture
def make_user(db):
    def make(email: str | None = None, password: str = "correct horse battery staple") -> User:
        email = email or f"person{next(_counter)}@example.com"
        return User.objects.create_user(email=email, password=password)

    return make


@pytest.fixture
def make_org(db, make_user):
    def make(slug: str | None = None, owner: User | None = None, **policy) -> Organization:
        owner = owner or make_user()
        slug = slug or f"org-{next(_counter)}"
        organization = organization_create(name=slug.title(), slug=slug, owner=owner)
        if policy:
            Organization.objects.filter(pk=organization.pk).update(**policy)
            organization.refresh_from_db()
        return organization

    return make


@pytest.fixture
def add_member(db, make_user):
    def add(organization: Organization, role: str = Role.MEMBER, user: User | None = None):
        user = user or make_user()
        membership_add(organization=organization, user=user, role=role, actor=Actor.system("test"))
        return user

    return add


def _personal_key(organization: Organization, owner: User, fields: dict):
    """Make `owner`'s personal key as they would have made it while an admin.

    Only its owner may create a personal key (docs/README-security.md), and members
    and viewers may hold keys they could not create today: made before a demotion,
    or before the policy changed. The role is lent for the one call and restored.
    """
    memberships = Membership.objects.filter(organization=organization, user=owner)
    role = memberships.values_list("role", flat=True).get()
    if role in (Role.OWNER, Role.ADMIN):
        return api_key_create(organization=organization, actor=owner, **fields)
    memberships.update(role=Role.ADMIN)
    try:
        return api_key_create(organization=organization, actor=owner, **fields)
    finally:
        memberships.update(role=role)


@pytest.fixture
def make_key(db):
    def make(organization: Organization, **fields):
        fields.setdefault("name", f"key {next(_counter)}")
        if fields.get("owner") is not None and "actor" not in fields:
            return _personal_key(organization, fields["owner"], fields)
        fields.setdefault("actor", Actor.system("test"))
        return api_key_create(organization=organization, **fields)

    return make


@pytest.fixture
def org(make_org):
    return make_org("acme")


@pytest.fixture
def owner(org):
    return Membership.objects.get(organization=org, role=Role.OWNER).user


@pytest.fixture
def api():
    """Return a function giving an API client that sends `token` as a bearer key."""

    def client(token: str | None = None) -> APIClient:
        c = APIClient()
        if token:
            c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return c

    return client


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def redis_url() -> str:
    """Return the URL of a reachable Redis for tests that need one; CI fails without it."""
    import os

    import redis

    url = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/2")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail(f"Redis at {url} is required here and unreachable: {exc}")
        pytest.skip(f"Redis at {url} is unreachable: {exc}")
    return url
