"""Key kinds through the API: dev keys, publishable keys and resource-limited keys.

A probe view that accepts publishable keys, and one guarded by HasResourceAccess,
stand in for a host's views (apikeys/tests/kinds_urls.py); the demo product's
tests (demo/tests/) do the same against real endpoints.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import get_resolver
from rest_framework.test import APIClient

from apikeys.authentication import APIKeyAuthentication
from apikeys.cache import verified_keys
from apikeys.kinds import accepts_publishable_keys
from apikeys.models import APIKey, PublishableToken
from apikeys.resources import filter_allowed
from apikeys.services import api_key_create, api_key_revoke, api_key_rotate
from apikeys.tests.kinds_urls import RESOURCE_TYPES, SCOPES
from audit.actors import Actor
from audit.models import AuditEvent
from orgs.models import Organization
from orgs.roles import Role

SYSTEM = Actor.system("test")
SHOP = "https://shop.example.com"

pytestmark = pytest.mark.urls("apikeys.tests.kinds_urls")


@pytest.fixture(autouse=True)
def _registry():
    with override_settings(KEYWARD_SCOPES=SCOPES, KEYWARD_RESOURCE_TYPES=RESOURCE_TYPES):
        yield


@pytest.fixture
def writer(org, make_key):
    """Return the token of an organisation key that may create keys."""
    return make_key(org, scopes=["keys:read", "keys:write", "embed"])[1]


def call(token, method, path, body=None, **headers):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", **headers)
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, json.dumps(body), content_type="application/json")


def code_of(response) -> str:
    return response.json()["error"]["code"]


def publishable(org, **fields):
    fields.setdefault("allowed_origins", [SHOP, "https://*.example.org"])
    fields.setdefault("scopes", ["embed"])
    return api_key_create(
        organization=org, actor=SYSTEM, name="Widget", kind="publishable", **fields
    )


# Dev keys


def test_a_dev_key_is_made_shown_and_filtered_as_dev(org, writer):
    response = call(writer, "post", "/api/v1/keys", {"name": "laptop", "environment": "dev"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith(f"kw_dev_{body['key']['id']}_")
    assert body["key"]["environment"] == "dev" and body["key"]["prefix"].startswith("kw_dev_")
    whoami = call(body["token"], "get", "/api/v1/whoami")
    assert whoami.status_code == 200 and whoami.json()["key"]["environment"] == "dev"
    listed = call(writer, "get", "/api/v1/keys?environment=dev").json()["results"]
    assert [key["id"] for key in listed] == [body["key"]["id"]]
    bad = call(writer, "get", "/api/v1/keys?environment=prod")
    assert bad.status_code == 400 and "'dev'" in bad.json()["error"]["fields"]["environment"][0]


def test_new_organisations_hold_dev_keys_to_60_a_minute(org, make_key):
    assert org.dev_rate_limit == "60/min"
    _, token = make_key(org, environment="dev", scopes=["keys:read"])
    response = call(token, "get", "/api/v1/whoami")
    assert response["RateLimit-Limit"] == "60"
    _, live = make_key(org, scopes=["keys:read"])
    assert "RateLimit-Limit" not in call(live, "get", "/api/v1/whoami")


def test_dev_keys_are_rate_limited_harder_unless_they_set_their_own(org, make_key):
    Organization.objects.filter(pk=org.pk).update(dev_rate_limit="2/min")
    _, dev = make_key(org, environment="dev", scopes=["keys:read"])
    _, own = make_key(org, environment="dev", scopes=["keys:read"], rate_limit="5/min")
    statuses = [call(dev, "get", "/api/v1/whoami").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert call(own, "get", "/api/v1/whoami")["RateLimit-Limit"] == "5"
    Organization.objects.filter(pk=org.pk).update(dev_rate_limit=None, default_rate_limit="7/min")
    _, fallback = make_key(org, environment="dev", scopes=["keys:read"])
    assert call(fallback, "get", "/api/v1/whoami")["RateLimit-Limit"] == "7"


def test_dev_keys_count_against_the_daily_quota_like_live_ones(org, make_key):
    Organization.objects.filter(pk=org.pk).update(daily_request_quota=2)
    _, dev = make_key(org, environment="dev", scopes=["keys:read"])
    _, test = make_key(org, environment="test", scopes=["keys:read"])
    assert [call(dev, "get", "/api/v1/whoami").status_code for _ in range(2)] == [200, 200]
    refused = call(dev, "get", "/api/v1/whoami")
    assert refused.status_code == 403 and code_of(refused) == "quota_exceeded"
    assert call(test, "get", "/api/v1/whoami").status_code == 200


# Publishable keys: creation


def test_a_publishable_key_is_created_over_the_api(org, writer):
    response = call(
        writer,
        "post",
        "/api/v1/keys",
        {
            "name": "Chat widget",
            "kind": "publishable",
            "scopes": ["embed"],
            "allowed_origins": ["HTTPS://Shop.Example.com:443", "https://*.example.org"],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert key["kind"] == "publishable"
    assert key["prefix"] == f"kw_pub_live_{key['id']}"
    assert body["token"].startswith(key["prefix"] + "_")
    assert key["allowed_origins"] == [SHOP, "https://*.example.org"]
    assert PublishableToken.objects.get(key_id=key["id"]).token == body["token"]
    event = AuditEvent.objects.get(action="api_key.created", target_id=key["id"])
    assert event.changes["kind"]["after"] == "publishable"
    assert event.changes["allowed_origins"]["after"] == [SHOP, "https://*.example.org"]
    assert body["token"] not in json.dumps(event.changes)


def test_a_publishable_key_gets_the_public_scopes_by_default(org, writer):
    response = call(
        writer,
        "post",
        "/api/v1/keys",
        {"name": "w", "kind": "publishable", "allowed_origins": [SHOP]},
    )
    assert response.status_code == 201, response.content
    assert response.json()["key"]["scopes"] == ["embed"]  # the writer holds no other public one


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "public"}, "kind"),
        ({"kind": 5}, "kind"),
        ({"kind": "publishable"}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": []}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": "https://shop.example.com"}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["*"]}, "allowed_origins"),
        (
            {"kind": "publishable", "allowed_origins": ["https://a.example.com/app"]},
            "allowed_origins",
        ),
        ({"kind": "publishable", "allowed_origins": ["https://a.example.com/"]}, "allowed_origins"),
        (
            {"kind": "publishable", "allowed_origins": ["https://a.*.example.com"]},
            "allowed_origins",
        ),
        ({"kind": "publishable", "allowed_origins": ["https://*.com"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["*.example.com"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["ftp://example.com"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["null"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["https://x.com?a=1"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["https://me@x.com"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["https://x.com:99999"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["https://x\u0000.com"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": ["https://exämple.com"]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": [""]}, "allowed_origins"),
        ({"kind": "publishable", "allowed_origins": [SHOP], "scopes": ["keys:read"]}, "scopes"),
        ({"kind": "publishable", "allowed_origins": [SHOP], "scopes": []}, "scopes"),
        ({"allowed_origins": [SHOP]}, "allowed_origins"),  # a secret key has no origins
        ({"environment": "prod"}, "environment"),
    ],
)
def test_malformed_kinds_and_origins_are_refused_and_create_nothing(org, writer, body, field):
    before = APIKey.objects.count()
    response = call(writer, "post", "/api/v1/keys", {"name": "bad", **body})
    assert response.status_code == 400, response.content
    assert code_of(response) == "validation_error"
    assert field in response.json()["error"]["fields"]
    assert APIKey.objects.count() == before
    assert not PublishableToken.objects.exists()


def test_a_publishable_key_cannot_hold_scopes_its_creator_lacks(org, make_key):
    _, narrow = make_key(org, scopes=["keys:write"])  # may create keys, holds no public scope
    response = call(
        narrow,
        "post",
        "/api/v1/keys",
        {"name": "w", "kind": "publishable", "allowed_origins": [SHOP], "scopes": ["embed"]},
    )
    assert response.status_code == 403 and code_of(response) == "scope_not_allowed"
    assert not APIKey.objects.filter(kind="publishable").exists()


def test_a_publishable_keys_origins_and_scopes_are_checked_on_update(org, writer):
    key, _ = publishable(org)
    path = f"/api/v1/keys/{key.id}"
    for body in ({"allowed_origins": []}, {"allowed_origins": ["*"]}, {"scopes": ["keys:read"]}):
        response = call(writer, "patch", path, body)
        assert response.status_code == 400 and code_of(response) == "validation_error", body
    changed = call(writer, "patch", path, {"allowed_origins": ["http://localhost:3000"]})
    assert changed.status_code == 200
    assert changed.json()["allowed_origins"] == ["http://localhost:3000"]
    event = AuditEvent.objects.get(action="api_key.updated", target_id=key.id)
    assert event.changes["allowed_origins"]["after"] == ["http://localhost:3000"]
    secret, _ = api_key_create(organization=org, actor=SYSTEM, name="s", scopes=["keys:read"])
    refused = call(writer, "patch", f"/api/v1/keys/{secret.id}", {"allowed_origins": [SHOP]})
    assert refused.status_code == 400
    assert call(writer, "patch", path, {"kind": "secret"}).status_code == 400


def test_a_rotated_publishable_key_stays_publishable_and_its_new_token_is_kept(org, writer):
    key, token = publishable(org)
    new, new_token, _old = api_key_rotate(key=key, actor=SYSTEM, grace_period=0)
    assert new_token.startswith(f"kw_pub_live_{new.id}_")
    assert (new.kind, new.allowed_origins) == ("publishable", key.allowed_origins)
    assert PublishableToken.objects.get(key=new).token == new_token
    assert call(new_token, "get", "/api/v1/probe/embed", HTTP_ORIGIN=SHOP).status_code == 200


# Publishable keys: where and from where they work


def test_a_publishable_key_works_from_its_origins_with_cors_headers(org):
    _, token = publishable(org)
    for origin in (SHOP, "https://app.example.org", "https://a.b.example.org"):
        response = call(token, "get", "/api/v1/probe/embed", HTTP_ORIGIN=origin)
        assert response.status_code == 200, (origin, response.content)
        assert response["Access-Control-Allow-Origin"] == origin
        assert "Origin" in response["Vary"]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example.net"},
        {"HTTP_ORIGIN": "http://shop.example.com"},  # another scheme
        {"HTTP_ORIGIN": "https://shop.example.com:8443"},  # another port
        {"HTTP_ORIGIN": "https://example.org"},  # a wildcard covers subdomains only
        {"HTTP_ORIGIN": "https://shop.example.com.evil.net"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_ORIGIN": ""},
        {"HTTP_REFERER": "https://evil.example.net/page"},
        {},  # no Origin and no Referer: curl, a server
    ],
)
def test_a_publishable_key_is_refused_from_any_other_origin(org, headers):
    _, token = publishable(org)
    response = call(token, "get", "/api/v1/probe/embed", **headers)
    assert response.status_code == 403 and code_of(response) == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response


def test_without_an_origin_the_referer_decides(org):
    _, token = publishable(org)
    response = call(token, "get", "/api/v1/probe/embed", HTTP_REFERER=f"{SHOP}/checkout?x=1")
    assert response.status_code == 200


def test_a_publishable_key_is_refused_everywhere_in_keywards_own_api(org, owner):
    key, token = publishable(org, scopes=["embed"])
    api_key_create(organization=org, actor=SYSTEM, name="other", scopes=["keys:read"])
    tried = 0
    for path, _view_class, methods in _keyward_api_views():
        for method in methods:
            url = path.replace("{id}", key.id)
            response = call(
                token, method, url, {} if method in ("post", "patch") else None, HTTP_ORIGIN=SHOP
            )
            assert response.status_code == 403, (method, url, response.content)
            assert code_of(response) == "publishable_key_not_allowed", (method, url)
            tried += 1
    assert tried >= 9
    assert APIKey.objects.filter(organization=org).count() == 2  # nothing was created


def _keyward_api_views():
    """Yield (path, view class, methods) of every routed key-authenticated view refusing them."""
    import re

    from django.urls import URLPattern, URLResolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, text)
            elif isinstance(pattern, URLPattern):
                yield text, getattr(pattern.callback, "cls", None)

    for path, view_class in walk(get_resolver("config.urls").url_patterns):
        if view_class is None or not path.startswith("api/v1/"):
            continue
        if accepts_publishable_keys(view_class):
            continue
        view = view_class()
        if not any(isinstance(a, APIKeyAuthentication) for a in view.get_authenticators()):
            continue
        methods = [m.lower() for m in view.allowed_methods if m not in ("OPTIONS", "HEAD")]
        yield "/" + re.sub(r"<(?:\w+:)?\w+>", "{id}", path), view_class, methods


def test_the_per_address_limit_holds_each_visitor_of_a_publishable_key(org, make_key):
    Organization.objects.filter(pk=org.pk).update(publishable_rate_limit="2/min")
    _, token = publishable(org)

    def visit(address):
        return call(token, "get", "/api/v1/probe/embed", HTTP_ORIGIN=SHOP, REMOTE_ADDR=address)

    assert [visit("203.0.113.5").status_code for _ in range(2)] == [200, 200]
    refused = visit("203.0.113.5")
    assert refused.status_code == 429 and code_of(refused) == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert visit("203.0.113.6").status_code == 200  # another visitor has their own budget
    _, secret = make_key(org, scopes=["embed"])
    for _ in range(4):  # secret keys have no per-address limit
        assert (
            call(secret, "get", "/api/v1/probe/embed", REMOTE_ADDR="203.0.113.5").status_code == 200
        )


# CORS preflights


def preflight(path, origin, method="GET"):
    return APIClient().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )


def test_a_preflight_is_answered_for_a_listed_origin_only(org):
    key, _ = publishable(org)
    response = preflight("/api/v1/probe/embed", "https://app.example.org")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "Authorization" in response["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response
    refused = preflight("/api/v1/probe/embed", "https://evil.example.net")
    assert refused.status_code == 403 and code_of(refused) == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused
    assert preflight("/api/v1/probe/embed", "null").status_code == 403
    api_key_revoke(key=key, actor=SYSTEM)
    assert preflight("/api/v1/probe/embed", SHOP).status_code == 403  # no usable key lists it


def test_views_that_refuse_publishable_keys_answer_no_cors(org):
    publishable(org)
    response = preflight("/api/v1/whoami", SHOP)
    assert "Access-Control-Allow-Origin" not in response
    assert response.status_code != 204


# The publishable token on the key page


def test_the_key_page_shows_a_publishable_token_again_until_it_is_revoked(org, owner, client):
    key, token = publishable(org)
    secret, secret_token = api_key_create(organization=org, actor=SYSTEM, name="s")
    client.force_login(owner)
    page = client.get(f"/orgs/{org.slug}/settings/api-keys/{key.id}/")
    assert token in page.content.decode() and "no-store" in page["Cache-Control"]
    assert SHOP in page.content.decode()
    secret_page = client.get(f"/orgs/{org.slug}/settings/api-keys/{secret.id}/")
    assert secret_token not in secret_page.content.decode()
    api_key_revoke(key=key, actor=SYSTEM)
    assert not PublishableToken.objects.filter(key=key).exists()
    page = client.get(f"/orgs/{org.slug}/settings/api-keys/{key.id}/")
    assert token not in page.content.decode()


# Resource-limited keys


def test_a_key_limited_to_some_resources_reaches_only_those(org, writer):
    response = call(
        writer, "post", "/api/v1/keys", {"name": "one thing", "resources": {"things": ["acme-t1"]}}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"]["resources"] == {"things": ["acme-t1"]}
    limited = body["token"]
    assert call(limited, "get", "/api/v1/probe/things/acme-t1").status_code == 200
    refused = call(limited, "get", "/api/v1/probe/things/acme-t2")
    assert refused.status_code == 403 and code_of(refused) == "resource_not_allowed"
    assert call(writer, "get", "/api/v1/probe/things/acme-t2").status_code == 200  # not limited
    event = AuditEvent.objects.get(action="api_key.created", target_id=body["key"]["id"])
    assert event.changes["resources"]["after"] == {"things": ["acme-t1"]}


@pytest.mark.parametrize(
    "resources",
    [
        {},
        [],
        "acme-t1",
        {"unknown": ["acme-t1"]},
        {"things": []},
        {"things": "acme-t1"},
        {"things": [1]},
        {"things": ["x" * 101]},
        {"things": ["acme-t1\u0000"]},
        {"things": ["acme-t9"]},  # not one of the organisation's
        {"things": ["other-t1"]},  # another organisation's
    ],
)
def test_malformed_or_foreign_resources_are_refused_and_create_nothing(
    org, writer, make_org, resources
):
    make_org("other")
    before = APIKey.objects.count()
    response = call(writer, "post", "/api/v1/keys", {"name": "bad", "resources": resources})
    assert response.status_code == 400, response.content
    assert code_of(response) == "validation_error"
    assert "resources" in response.json()["error"]["fields"]
    assert APIKey.objects.count() == before


def test_a_limited_key_makes_keys_inside_its_own_limit(org, make_key):
    _, limited = make_key(
        org, scopes=["keys:read", "keys:write"], resources={"things": ["acme-t1", "acme-t2"]}
    )
    inherited = call(limited, "post", "/api/v1/keys", {"name": "child", "scopes": ["keys:read"]})
    assert inherited.status_code == 201
    assert inherited.json()["key"]["resources"] == {"things": ["acme-t1", "acme-t2"]}
    narrower = call(
        limited,
        "post",
        "/api/v1/keys",
        {"name": "n", "scopes": ["keys:read"], "resources": {"things": ["acme-t2"]}},
    )
    assert narrower.status_code == 201
    before = APIKey.objects.count()
    wider = call(
        limited,
        "post",
        "/api/v1/keys",
        {"name": "w", "scopes": ["keys:read"], "resources": {"things": ["acme-t3"]}},
    )
    assert wider.status_code == 403 and code_of(wider) == "resource_not_allowed"
    assert APIKey.objects.count() == before
    child_id = narrower.json()["key"]["id"]
    lifted = call(limited, "patch", f"/api/v1/keys/{child_id}", {"resources": None})
    assert lifted.status_code == 403 and code_of(lifted) == "resource_not_allowed"
    assert APIKey.objects.get(pk=child_id).resources == {"things": ["acme-t2"]}


def test_a_personal_key_stays_inside_what_its_owner_may_reach(org, add_member, make_user):
    narrow = add_member(org, Role.ADMIN, make_user("narrow@example.com"))
    key, _ = api_key_create(
        organization=org,
        actor=narrow,
        owner=narrow,
        name="mine",
        scopes=["keys:read"],
        resources={"things": ["acme-t1"]},
    )
    assert key.resources == {"things": ["acme-t1"]}
    from config.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        api_key_create(
            organization=org,
            actor=narrow,
            owner=narrow,
            name="wider",
            scopes=["keys:read"],
            resources={"things": ["acme-t2"]},
        )
    assert "resources" in refused.value.extra["fields"]


def test_filter_allowed_narrows_a_listing_and_leaves_unlimited_keys_alone(org, make_key):
    one, _ = make_key(org, scopes=["keys:read"])
    two, _ = make_key(org, scopes=["keys:read"])
    limited = APIKey(resources={"keys": [one.id]})
    everything = APIKey.objects.filter(organization=org)
    assert list(filter_allowed(everything, limited, "keys")) == [one]
    assert set(filter_allowed(everything, APIKey(resources=None), "keys")) == {one, two}
    assert list(filter_allowed(everything, APIKey(resources={"other": ["x"]}), "keys")) == []
    assert set(filter_allowed(everything, None, "keys")) == {one, two}


def test_a_scope_no_longer_marked_public_stops_working_for_publishable_keys(org):
    _, token = publishable(org)
    assert call(token, "get", "/api/v1/probe/embed", HTTP_ORIGIN=SHOP).status_code == 200
    private = {**SCOPES, "embed": "Read what an embedded widget shows."}
    with override_settings(KEYWARD_SCOPES=private):
        verified_keys.clear()  # a new scope registry comes with a restart: an empty cache
        response = call(token, "get", "/api/v1/probe/embed", HTTP_ORIGIN=SHOP)
    assert response.status_code == 403 and code_of(response) == "missing_scope"


def test_dev_and_publishable_tokens_in_a_url_are_refused_and_not_echoed(org, make_key):
    _, dev = make_key(org, environment="dev")
    _, public = publishable(org)
    for token in (dev, public):
        response = APIClient().get(f"/api/v1/probe/embed?key={token}", HTTP_ORIGIN=SHOP)
        assert response.status_code == 400 and code_of(response) == "key_in_url"
        assert token not in response.content.decode()


def test_a_key_whose_token_carries_another_kind_is_refused(org):
    """A publishable token with its mark removed (and a fresh checksum) is not the key."""
    from apikeys import tokens

    _, token = publishable(org)
    body = token[:-6].replace("_pub_", "_", 1)
    response = call(body + tokens.checksum(body), "get", "/api/v1/probe/embed", HTTP_ORIGIN=SHOP)
    assert response.status_code == 401 and code_of(response) == "invalid_key"
