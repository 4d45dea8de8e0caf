"""A key may change (update, rotate, revoke) only keys whose effective scopes lie within its own."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import APIKey
from audit.models import AuditEvent
from orgs.roles import Role


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def send(client, method, path, token, body=None):
    return getattr(client, method)(
        path, json.dumps(body or {}), content_type="application/json", **auth(token)
    )


@pytest.fixture
def narrow(org, make_key):
    return make_key(org, name="narrow", scopes=["keys:read", "keys:write"])


@pytest.fixture
def broad(org, make_key):
    key, _ = make_key(
        org,
        name="broad",
        scopes=["admin"],
        allowed_ips=["192.0.2.0/24"],
        rate_limit="10/min",
        expires_at=timezone.now() + timedelta(days=30),
    )
    return key


@pytest.mark.parametrize(
    "body",
    [
        {"allowed_ips": ["0.0.0.0/0"]},
        {"allowed_ips": []},
        {"rate_limit": None},
        {"expires_at": None},
        {"name": "renamed"},
    ],
)
def test_a_narrow_key_cannot_loosen_a_broad_one(client, narrow, broad, body):
    _, token = narrow
    before = APIKey.objects.get(pk=broad.pk)
    response = send(client, "patch", f"/api/v1/keys/{broad.id}", token, body)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "scope_not_allowed"
    assert "admin" in error["scopes"] or "audit:read" in error["scopes"]
    after = APIKey.objects.get(pk=broad.pk)
    assert (after.allowed_ips, after.rate_limit, after.expires_at, after.name) == (
        before.allowed_ips, before.rate_limit, before.expires_at, before.name,
    )  # fmt: skip
    assert not AuditEvent.objects.filter(action="api_key.updated", target_id=broad.id).exists()


def test_a_narrow_key_cannot_revoke_or_rotate_a_broad_one(client, narrow, broad):
    _, token = narrow
    for verb in ("revoke", "rotate"):
        response = send(client, "post", f"/api/v1/keys/{broad.id}/{verb}", token)
        assert response.status_code == 403, verb
        assert response.json()["error"]["code"] == "scope_not_allowed"
    fresh = APIKey.objects.get(pk=broad.pk)
    assert fresh.revoked_at is None and fresh.replaced_by_id is None


def test_update_rotate_and_revoke_give_the_same_answer(client, narrow, org, make_key):
    """The three paths agree: refused together on a broader key, allowed together within."""
    _, token = narrow
    paths = [
        ("patch", "", {"name": "changed"}),
        ("post", "/rotate", {}),
        ("post", "/revoke", {}),
    ]
    for method, suffix, body in paths:
        wider, _ = make_key(org, scopes=["keys:read", "usage:read"])
        response = send(client, method, f"/api/v1/keys/{wider.id}{suffix}", token, body)
        assert (response.status_code, response.json()["error"]["scopes"]) == (
            403, ["usage:read"],
        ), suffix  # fmt: skip
        within, _ = make_key(org, scopes=["keys:read"])
        response = send(client, method, f"/api/v1/keys/{within.id}{suffix}", token, body)
        assert response.status_code in (200, 201), suffix


def test_a_personal_keys_effective_scopes_are_what_counts(client, org, add_member, narrow):
    """A demoted admin's key that still lists `admin` grants only a viewer's scopes now."""
    from apikeys.services import api_key_create
    from orgs.models import Membership
    from orgs.services import membership_role_change

    person = add_member(org, Role.ADMIN)
    key, _ = api_key_create(
        organization=org, actor=person, owner=person, name="p", scopes=["admin"]
    )
    membership = Membership.objects.get(organization=org, user=person)
    from audit.actors import Actor

    membership_role_change(membership=membership, role=Role.VIEWER, actor=Actor.system("test"))
    _, token = narrow
    response = send(client, "patch", f"/api/v1/keys/{key.id}", token, {"name": "p2"})
    # a viewer's ceiling holds the registered :read scopes (members:read, usage:read and
    # the host's own) but keys:read, which the narrow key has, and not audit:read
    assert response.status_code == 403
    missing = set(response.json()["error"]["scopes"])
    assert {"members:read", "usage:read"} <= missing
    assert all(scope.endswith(":read") for scope in missing)
    assert not missing & {"keys:read", "audit:read", "admin"}
