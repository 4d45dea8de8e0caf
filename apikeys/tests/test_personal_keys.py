"""A personal key stays its owner's: nobody else may rotate it or obtain a token for it.

A token that acts as a person is minted only for that person, through their own
session or one of their own personal keys. Others may revoke a personal key (that
takes power away); the rule holds on the API, the settings pages, the admin and the CLI.
"""

import io
import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from apikeys import tokens
from apikeys.models import APIKey
from apikeys.services import api_key_create, api_key_rotate
from audit.actors import Actor
from audit.models import AuditEvent
from config.errors import Forbidden
from orgs.models import User
from orgs.roles import Role

TOKEN_RE = re.compile(r'id="new-token"[^>]*>([^<]+)<')
PASSWORD = "correct horse battery staple"  # the conftest's make_user default


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post(client, path, token, body=None):
    return client.post(path, json.dumps(body or {}), content_type="application/json", **auth(token))


@pytest.fixture
def alice(org, add_member):
    return add_member(org, Role.ADMIN)


@pytest.fixture
def alices_key(org, alice):
    return api_key_create(
        organization=org, actor=alice, owner=alice, name="Alice's", scopes=["keys:read"]
    )


def whoami(client, token):
    return client.get("/api/v1/whoami", **auth(token))


# --- the API -------------------------------------------------------------------------


def test_an_organisation_key_cannot_rotate_someone_elses_personal_key(client, org, alices_key):
    key, alices_token = alices_key
    _, org_token = api_key_create(
        organization=org, actor=Actor.system("test"), name="ops", scopes=["admin"]
    )
    response = post(client, f"/api/v1/keys/{key.id}/rotate", org_token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "token" not in response.json()
    assert APIKey.objects.filter(organization=org).count() == 2  # nothing minted
    assert not AuditEvent.objects.filter(action="api_key.rotated", target_id=key.id).exists()
    answer = whoami(client, alices_token)  # Alice's own token still works
    assert answer.status_code == 200
    assert answer.json()["key"]["id"] == key.id


def test_someone_elses_personal_key_cannot_rotate_it_either(
    client, org, owner, alices_key, make_key
):
    key, _ = alices_key
    _, owners_token = api_key_create(
        organization=org, actor=owner, owner=owner, name="owner's", scopes=["admin"]
    )
    response = post(client, f"/api/v1/keys/{key.id}/rotate", owners_token)
    assert response.status_code == 403
    assert APIKey.objects.get(pk=key.pk).replaced_by_id is None


def test_an_organisation_key_may_still_revoke_a_personal_key(client, org, alices_key):
    key, alices_token = alices_key
    _, org_token = api_key_create(
        organization=org, actor=Actor.system("test"), name="ops", scopes=["admin"]
    )
    response = post(client, f"/api/v1/keys/{key.id}/revoke", org_token)
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert whoami(client, alices_token).status_code == 401


def test_the_owner_rotates_with_one_of_their_own_keys(client, org, alice, alices_key):
    key, _ = alices_key
    _, tool_token = api_key_create(
        organization=org, actor=alice, owner=alice, name="tool", scopes=["keys:read", "keys:write"]
    )
    response = post(client, f"/api/v1/keys/{key.id}/rotate", tool_token)
    assert response.status_code == 201
    new_token = response.json()["token"]
    assert whoami(client, new_token).json()["owner"] == {"id": str(alice.pk), "email": alice.email}


# --- the services, whoever calls them ----------------------------------------------------


def test_an_admin_cannot_rotate_someone_elses_personal_key(org, owner, alices_key):
    key, _ = alices_key
    with pytest.raises(Forbidden):
        api_key_rotate(key=key, actor=owner, grace_period=0)
    with pytest.raises(Forbidden):
        api_key_rotate(key=key, actor=Actor.system("script"), grace_period=0)
    assert APIKey.objects.get(pk=key.pk).replaced_by_id is None


def test_the_owner_rotates_their_own_key(org, alice, alices_key):
    key, _ = alices_key
    new, token, _old = api_key_rotate(key=key, actor=alice, grace_period=0)
    assert new.owner == alice and tokens.looks_like_token(token)


def test_nobody_creates_a_personal_key_for_someone_else(org, owner, alice):
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=owner, owner=alice, name="for alice")
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=Actor.system("script"), owner=alice, name="x")
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=Actor.of(owner), owner=alice, name="x")
    assert not APIKey.objects.filter(owner=alice).exists()


# --- the settings pages ------------------------------------------------------------------


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rotate_on_the_page(client, org, key):
    url = reverse("key-rotate", kwargs={"slug": org.slug, "key_id": key.pk})
    page = client.get(url)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.content.decode())
    data = {"grace_period": "0", "grace": "0", "nonce": nonce.group(1) if nonce else ""}
    return client.post(url, data, follow=True)


def test_an_admin_on_the_pages_is_not_shown_a_token_for_the_owners_key(org, owner, alice):
    key, _ = api_key_create(organization=org, actor=owner, owner=owner, name="owner's")
    client = logged_in(alice)
    listing = client.get(reverse("keys", kwargs={"slug": org.slug})).content.decode()
    rotate_url = reverse("key-rotate", kwargs={"slug": org.slug, "key_id": key.pk})
    assert rotate_url not in listing  # no Rotate button for someone else's personal key
    response = rotate_on_the_page(client, org, key)
    assert TOKEN_RE.search(response.content.decode()) is None
    assert APIKey.objects.get(pk=key.pk).replaced_by_id is None
    assert APIKey.objects.filter(organization=org).count() == 1


def test_the_owner_rotates_their_own_key_on_the_pages(org, owner):
    key, _ = api_key_create(organization=org, actor=owner, owner=owner, name="mine")
    response = rotate_on_the_page(logged_in(owner), org, key)
    assert TOKEN_RE.search(response.content.decode()) is not None
    assert APIKey.objects.get(pk=key.pk).replaced_by_id is not None


# --- the admin ---------------------------------------------------------------------------


def test_an_operator_cannot_create_a_personal_key_for_someone_else(org, alice):
    operator = User.objects.create_superuser(email="ops@example.com", password="x-strong-pass")
    client = logged_in(operator)
    response = client.post(
        reverse("admin:apikeys_apikey_add"),
        {
            "organization": org.pk,
            "owner": alice.pk,
            "name": "taken over",
            "environment": "live",
            "scopes": ["keys:read"],
            "allowed_ips": "",
            "rate_limit": "",
        },
        follow=True,
    )
    assert not APIKey.objects.filter(name="taken over").exists()
    assert "kw_live_" not in response.content.decode()


# --- the command line --------------------------------------------------------------------


def createapikey(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("createapikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_cli_mints_a_personal_key_only_with_its_owners_password(org, alice, monkeypatch):
    with pytest.raises(CommandError) as refused:
        createapikey("--org", org.slug, "--name", "mine", "--owner", alice.email)
    assert refused.value.returncode == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("not her password\n"))
    with pytest.raises(CommandError) as wrong:
        createapikey(
            "--org", org.slug, "--name", "mine", "--owner", alice.email, "--password-stdin"
        )
    assert wrong.value.returncode == 1
    assert not APIKey.objects.filter(owner=alice).exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    out, _ = createapikey(
        "--org", org.slug, "--name", "mine", "--owner", alice.email, "--password-stdin"
    )
    key = APIKey.objects.get(pk=tokens.parse(out.strip()).key_id)
    assert key.owner == alice
    event = AuditEvent.objects.get(action="api_key.created", target_id=key.id)
    assert (event.actor_type, event.actor_id) == ("user", str(alice.pk))
