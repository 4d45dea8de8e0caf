"""The demo product's API: what each key gets, and every refusal with its error code."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apikeys.services import api_key_create
from audit.actors import Actor
from demo.models import Bot, Channel
from demo.services import bot_create, channel_create
from orgs.models import Organization

SYSTEM = Actor.system("test")
SHOP = "https://shop.example.com"
EVERYTHING = ["bots:read", "bots:write", "channels:read", "channels:write", "widget"]


@pytest.fixture
def bots(org, make_org):
    support = bot_create(organization=org, name="Support", greeting="Hi from support")
    sales = bot_create(organization=org, name="Sales")
    channel_create(bot=support, kind="web", name="Website")
    elsewhere = bot_create(organization=make_org("elsewhere"), name="Not yours")
    return {"support": support, "sales": sales, "elsewhere": elsewhere}


def key(org, **fields):
    fields.setdefault("scopes", EVERYTHING)
    return api_key_create(organization=org, actor=SYSTEM, name="k", **fields)[1]


def publishable(org, **fields):
    return key(org, kind="publishable", scopes=["widget"], allowed_origins=[SHOP], **fields)


def call(token, method, path, body=None, **headers):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", **headers)
    else:
        client.credentials(**headers)
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, json.dumps(body), content_type="application/json")


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


# What keys get


def test_a_key_lists_its_organisations_bots_only(org, bots):
    response = call(key(org), "get", "/api/v1/bots")
    assert response.status_code == 200
    names = [bot["name"] for bot in response.json()["results"]]
    assert sorted(names) == ["Sales", "Support"]


def test_a_key_reads_changes_and_adds_to_a_bot(org, bots):
    token, support = key(org), bots["support"]
    assert call(token, "get", f"/api/v1/bots/{support.id}").json()["name"] == "Support"
    changed = call(token, "patch", f"/api/v1/bots/{support.id}", {"greeting": "Hello!"})
    assert changed.status_code == 200 and changed.json()["greeting"] == "Hello!"
    created = call(token, "post", "/api/v1/bots", {"name": "Billing"})
    assert created.status_code == 201 and created.json()["id"].startswith("bot_")
    channel = call(
        token, "post", f"/api/v1/bots/{support.id}/channels", {"kind": "slack", "name": "Slack"}
    )
    assert channel.status_code == 201
    listed = call(token, "get", f"/api/v1/bots/{support.id}/channels").json()["results"]
    assert {c["name"] for c in listed} == {"Website", "Slack"}


def test_a_key_limited_to_one_bot_sees_and_changes_only_that_bot(org, bots):
    support, sales = bots["support"], bots["sales"]
    token = key(org, resources={"bots": [support.id]})
    listing = call(token, "get", "/api/v1/bots").json()["results"]
    assert [bot["id"] for bot in listing] == [support.id]
    assert call(token, "get", f"/api/v1/bots/{support.id}").status_code == 200
    assert call(token, "get", f"/api/v1/bots/{support.id}/channels").status_code == 200
    for method, path, body in [
        ("get", f"/api/v1/bots/{sales.id}", None),
        ("patch", f"/api/v1/bots/{sales.id}", {"name": "Taken over"}),
        ("get", f"/api/v1/bots/{sales.id}/channels", None),
        ("post", f"/api/v1/bots/{sales.id}/channels", {"kind": "web", "name": "x"}),
        ("post", "/api/v1/bots", {"name": "A new bot it could not see"}),
    ]:
        error = refused(call(token, method, path, body), 403, "resource_not_allowed")
        assert error["resource_type"] == "bots"
    assert Bot.objects.get(pk=sales.pk).name == "Sales"
    assert Bot.objects.filter(organization=org).count() == 2
    assert not Channel.objects.filter(bot=sales).exists()


def test_the_widget_answers_a_publishable_key_from_its_origin(org, bots):
    support = bots["support"]
    response = call(publishable(org), "get", f"/api/v1/widget/bots/{support.id}", HTTP_ORIGIN=SHOP)
    assert response.status_code == 200
    assert response.json() == {"id": support.id, "name": "Support", "greeting": "Hi from support"}
    assert response["Access-Control-Allow-Origin"] == SHOP
    secret = call(key(org), "get", f"/api/v1/widget/bots/{support.id}")
    assert secret.status_code == 200  # a secret key with the widget scope may read it too


# Every refusal, with its code


def test_no_key_and_a_bad_key_get_401(org, bots):
    refused(call(None, "get", "/api/v1/bots"), 401, "missing_key")
    refused(call("kw_live_notarealkey000_" + "0" * 38, "get", "/api/v1/bots"), 401, "invalid_key")


def test_a_key_without_the_scope_gets_missing_scope(org, bots):
    reader = key(org, scopes=["bots:read"])
    error = refused(call(reader, "post", "/api/v1/bots", {"name": "x"}), 403, "missing_scope")
    assert error["required_scopes"] == ["bots:write"]
    support = bots["support"].id
    refused(call(reader, "get", f"/api/v1/bots/{support}/channels"), 403, "missing_scope")
    refused(call(reader, "get", f"/api/v1/widget/bots/{support}"), 403, "missing_scope")
    assert not Bot.objects.filter(name="x").exists()


def test_another_organisations_bot_is_not_found(org, bots):
    token, elsewhere = key(org), bots["elsewhere"].id
    refused(call(token, "get", f"/api/v1/bots/{elsewhere}"), 404, "not_found")
    refused(call(token, "patch", f"/api/v1/bots/{elsewhere}", {"name": "x"}), 404, "not_found")
    refused(call(token, "get", f"/api/v1/bots/{elsewhere}/channels"), 404, "not_found")
    assert Bot.objects.get(pk=elsewhere).name == "Not yours"


def test_a_publishable_key_is_refused_outside_the_widget(org, bots):
    token, support = publishable(org), bots["support"].id
    for method, path in [
        ("get", "/api/v1/bots"),
        ("get", f"/api/v1/bots/{support}"),
        ("get", f"/api/v1/bots/{support}/channels"),
        ("get", "/api/v1/whoami"),
        ("get", "/api/v1/keys"),
    ]:
        response = call(token, method, path, HTTP_ORIGIN=SHOP)
        refused(response, 403, "publishable_key_not_allowed")
        assert "Access-Control-Allow-Origin" not in response


def test_the_widget_refuses_other_origins_and_other_bots(org, bots):
    support, sales = bots["support"].id, bots["sales"].id
    token = publishable(org)
    for headers in ({"HTTP_ORIGIN": "https://evil.example.net"}, {"HTTP_ORIGIN": "null"}, {}):
        refused(
            call(token, "get", f"/api/v1/widget/bots/{support}", **headers),
            403,
            "origin_not_allowed",
        )
    limited = publishable(org, resources={"bots": [support]})
    assert (
        call(limited, "get", f"/api/v1/widget/bots/{support}", HTTP_ORIGIN=SHOP).status_code == 200
    )
    refused(
        call(limited, "get", f"/api/v1/widget/bots/{sales}", HTTP_ORIGIN=SHOP),
        403,
        "resource_not_allowed",
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "tab\tin it"},
        {"name": "nul\u0000"},
        {"name": "ok", "owner": "me"},
        {"name": ["a list"]},
        [],
        "a string",
    ],
)
def test_bad_bot_bodies_are_refused_and_create_nothing(org, bots, body):
    refused(call(key(org), "post", "/api/v1/bots", body), 400, "validation_error")
    assert Bot.objects.filter(organization=org).count() == 2


def test_a_bad_channel_kind_is_refused(org, bots):
    support = bots["support"].id
    response = call(
        key(org), "post", f"/api/v1/bots/{support}/channels", {"kind": "pigeon", "name": "x"}
    )
    assert "kind" in refused(response, 400, "validation_error")["fields"]


def test_a_limited_key_cannot_be_given_another_organisations_bot(org, bots):
    writer = key(org, scopes=["keys:write", *EVERYTHING])
    response = call(
        writer, "post", "/api/v1/keys", {"name": "x", "resources": {"bots": [bots["elsewhere"].id]}}
    )
    assert "resources" in refused(response, 400, "validation_error")["fields"]


# seeddemo


def test_seeddemo_gives_the_demo_organisation_its_bots_once(db):
    out = io.StringIO()
    call_command("seeddemo", stdout=out)
    demo = Organization.objects.get(slug="demo")
    ids = set(Bot.objects.filter(organization=demo).values_list("id", flat=True))
    assert ids == {"bot_support", "bot_sales", "bot_hr"}
    assert "bot_support" in out.getvalue()
    call_command("seeddemo", stdout=io.StringIO())
    assert Bot.objects.filter(organization=demo).count() == 3


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_no_role_reaches_another_organisations_bot(org, bots, add_member, make_key, role):
    from orgs.models import Membership
    from orgs.roles import scope_ceiling

    Organization.objects.filter(pk=org.pk).update(members_can_create_keys=True)
    org.refresh_from_db()
    person = (
        Membership.objects.get(organization=org, role="owner").user
        if role == "owner"
        else add_member(org, role)
    )
    # made as the person (conftest's make_key), since only its owner may mint a personal key
    token = make_key(org, owner=person, name=f"{role} key", scopes=sorted(scope_ceiling(role)))[1]
    elsewhere = bots["elsewhere"]
    for method, path, body in [
        ("get", f"/api/v1/bots/{elsewhere.id}", None),
        ("patch", f"/api/v1/bots/{elsewhere.id}", {"name": "pwned"}),
        ("get", f"/api/v1/bots/{elsewhere.id}/channels", None),
        ("post", f"/api/v1/bots/{elsewhere.id}/channels", {"kind": "web", "name": "x"}),
        ("get", f"/api/v1/widget/bots/{elsewhere.id}", None),
    ]:
        response = call(token, method, path, body)
        code = response.json()["error"]["code"]
        assert (response.status_code, code) in {(404, "not_found"), (403, "missing_scope")}
        assert "Not yours" not in response.content.decode()
    listed = call(token, "get", "/api/v1/bots")
    assert listed.status_code in (200, 403) and "Not yours" not in listed.content.decode()
    assert Bot.objects.get(pk=elsewhere.pk).name == "Not yours"
    assert not elsewhere.channels.exists()


@pytest.mark.parametrize("bot_id", ["%00", "bot_%00", "x" * 300, "bot_support%20or%201=1"])
def test_a_path_that_is_no_bot_id_is_not_found(org, bots, bot_id):
    refused(call(key(org), "get", f"/api/v1/bots/{bot_id}"), 404, "not_found")
    refused(call(key(org), "get", f"/api/v1/widget/bots/{bot_id}"), 404, "not_found")
