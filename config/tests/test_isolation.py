"""Tenant isolation: every role of organisation A, against organisation B's objects."""

from __future__ import annotations

import json

import pytest

from apikeys.models import APIKey
from apikeys.services import api_key_create
from audit.actors import Actor
from orgs.models import Membership
from orgs.roles import Role, scope_ceiling
from orgs.services import invitation_create

ROLES = [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER]
SECRET_NAME = "Bravo Secret Project"
SYSTEM = Actor.system("isolation")


@pytest.fixture
def world(make_org, add_member, make_user):
    alpha = make_org("alpha")
    alpha.members_can_create_keys = True
    alpha.save()
    people = {Role.OWNER: Membership.objects.get(organization=alpha).user}
    for role in ROLES[1:]:
        people[role] = add_member(alpha, role)
    bravo = make_org("bravo-secret-corp")
    bravo_member = add_member(bravo, Role.MEMBER, make_user("bravo.person@example.com"))
    bravo_key, _ = api_key_create(organization=bravo, actor=SYSTEM, name=SECRET_NAME)
    invitation, _ = invitation_create(
        organization=bravo, email="bravo.invitee@example.com", role=Role.MEMBER, actor=SYSTEM
    )
    tokens = {}
    for role, person in people.items():
        scopes = sorted(scope_ceiling(role))
        _, tokens[role] = api_key_create(
            organization=alpha, actor=SYSTEM, owner=person, name=f"{role} key", scopes=scopes
        )
    return {
        "alpha": alpha,
        "people": people,
        "tokens": tokens,
        "bravo": bravo,
        "bravo_key": bravo_key,
        "bravo_membership": Membership.objects.get(user=bravo_member),
        "invitation": invitation,
    }


def assert_no_leak(response, world):
    text = response.content.decode(errors="replace")
    for secret in (SECRET_NAME, "bravo.person@example.com", "bravo.invitee@example.com"):
        assert secret not in text, (response.status_code, secret)


def api_requests(world):
    key_id = world["bravo_key"].id
    return [
        ("get", f"/api/v1/keys/{key_id}", None),
        ("patch", f"/api/v1/keys/{key_id}", {"name": "pwned"}),
        ("post", f"/api/v1/keys/{key_id}/rotate", {"grace_period": 0}),
        ("post", f"/api/v1/keys/{key_id}/revoke", {}),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_api_with_every_role_never_reaches_another_organisation(client, world, role):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world['tokens'][role]}"}
    for method, path, body in api_requests(world):
        kwargs = dict(auth)
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        response = getattr(client, method)(path, **kwargs)
        code = response.json()["error"]["code"]
        assert (response.status_code, code) in {(404, "not_found"), (403, "missing_scope")}, (
            role,
            method,
            path,
        )
        assert_no_leak(response, world)
    listed = client.get("/api/v1/keys", **auth)
    assert listed.status_code == 200
    assert world["bravo_key"].id not in listed.content.decode()
    assert_no_leak(listed, world)
    usage = client.get("/api/v1/usage", **auth)
    assert usage.status_code == 200 or usage.json()["error"]["code"] == "missing_scope"
    assert world["bravo_key"].id not in usage.content.decode()
    assert_no_leak(usage, world)
    events = client.get(f"/api/v1/audit-events?target={world['bravo_key'].id}", **auth)
    if events.status_code == 200:
        assert events.json()["results"] == []
    else:
        assert events.json()["error"]["code"] == "missing_scope"
    bravo_key = APIKey.objects.get(pk=world["bravo_key"].pk)
    assert (bravo_key.name, bravo_key.revoked_at, bravo_key.replaced_by_id) == (
        SECRET_NAME,
        None,
        None,
    )


def bravo_pages(world):
    slug, key_id = world["bravo"].slug, world["bravo_key"].id
    membership, invitation = world["bravo_membership"].pk, world["invitation"].pk
    base = f"/orgs/{slug}/settings"
    return [
        ("get", f"/orgs/{slug}/"),
        ("get", f"{base}/api-keys/"),
        ("get", f"{base}/api-keys/new/"),
        ("post", f"{base}/api-keys/new/"),
        ("get", f"{base}/api-keys/{key_id}/"),
        ("get", f"{base}/api-keys/{key_id}/rotate/"),
        ("post", f"{base}/api-keys/{key_id}/rotate/"),
        ("get", f"{base}/api-keys/{key_id}/revoke/"),
        ("post", f"{base}/api-keys/{key_id}/revoke/"),
        ("get", f"{base}/members/"),
        ("post", f"{base}/members/invite/"),
        ("post", f"{base}/members/{membership}/role/"),
        ("post", f"{base}/members/{membership}/remove/"),
        ("post", f"{base}/invitations/{invitation}/withdraw/"),
        ("get", f"{base}/policy/"),
        ("post", f"{base}/policy/"),
        ("get", f"{base}/audit-log/"),
        ("get", f"{base}/audit-log/export.csv"),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_pages_of_another_organisation_are_404_for_every_role(client, world, role):
    client.force_login(world["people"][role])
    for method, path in bravo_pages(world):
        response = getattr(client, method)(path)
        assert response.status_code == 404, (role, method, path, response.status_code)
        assert_no_leak(response, world)
    assert Membership.objects.filter(pk=world["bravo_membership"].pk).exists()
    assert APIKey.objects.get(pk=world["bravo_key"].pk).revoked_at is None


@pytest.mark.parametrize("role", ROLES)
def test_own_organisation_pages_naming_another_organisations_objects_are_404(client, world, role):
    client.force_login(world["people"][role])
    base = f"/orgs/{world['alpha'].slug}/settings"
    key_id = world["bravo_key"].id
    for method, path in [
        ("get", f"{base}/api-keys/{key_id}/"),
        ("post", f"{base}/api-keys/{key_id}/revoke/"),
        ("post", f"{base}/members/{world['bravo_membership'].pk}/remove/"),
        ("post", f"{base}/invitations/{world['invitation'].pk}/withdraw/"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code in {403, 404}, (role, method, path, response.status_code)
        assert_no_leak(response, world)


@pytest.mark.parametrize(
    ("role", "page", "status"),
    [
        (role, page, 200 if role in (Role.OWNER, Role.ADMIN) else 403)
        for role in ROLES
        for page in ("members", "audit-log", "policy")
    ]
    + [(Role.MEMBER, "api-keys", 200), (Role.VIEWER, "api-keys", 403)],
)
def test_own_organisation_pages_answer_403_when_the_role_is_too_low(
    client, world, role, page, status
):
    client.force_login(world["people"][role])
    response = client.get(f"/orgs/{world['alpha'].slug}/settings/{page}/")
    assert response.status_code == status
