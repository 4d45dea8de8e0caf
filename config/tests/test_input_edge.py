"""The input edge: control characters, deep JSON, large bodies and odd requests.

Every case here was a 500 (most only on PostgreSQL, which cannot store NUL in text),
an HTML answer under /api/, or a date accepted with a NUL in it. Each must now be a
documented 4xx with the JSON error shape (API) or a 400/404/413 page, and write
nothing. Run on PostgreSQL in CI (`make test` with DATABASE_URL).
"""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

from apikeys.models import APIKey
from audit.models import AuditEvent
from config.input import MAX_JSON_DEPTH, has_control_characters

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


@pytest.fixture
def admin_token(org, make_key):
    return make_key(org, scopes=["admin"])[1]


@pytest.fixture
def target(org, make_key):
    return make_key(org, scopes=["keys:read"])[0]


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


def counts() -> tuple[int, int]:
    return APIKey.objects.count(), AuditEvent.objects.count()


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response["X-Request-Id"]
    return error


def call(client, method: str, path: str, token: str, body=None, **extra):
    if body is not None and not isinstance(body, str | bytes):
        body = json.dumps(body)
    return client.generic(
        method,
        path,
        body or "",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **extra,
    )


# --- control characters in the path: 404 ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/keys/%00"),
        ("PATCH", "/api/v1/keys/%00"),
        ("POST", "/api/v1/keys/%00/revoke"),
        ("POST", "/api/v1/keys/%00/rotate"),
        ("GET", "/api/v1/keys/abc%00def"),
        ("GET", "/api/v1/keys/abc%01def"),
        ("GET", "/api/v1/keys/abc%7Fdef"),
        ("GET", "/api/v1/keys/abc%C2%85def"),  # U+0085, a C1 control
        ("GET", "/api/v1/whoami%00"),
    ],
)
def test_a_control_character_in_an_api_path_is_a_json_404(client, admin_token, method, path):
    before = counts()
    body = {"name": "x"} if method == "PATCH" else None
    assert_json_error(call(client, method, path, admin_token, body), 404, "not_found")
    assert counts() == before


@pytest.mark.parametrize("suffix", ["", "rotate/", "revoke/"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_nul_in_a_settings_page_path_is_a_404_page(owner_client, org, suffix, method):
    before = counts()
    response = getattr(owner_client, method)(f"/orgs/{org.slug}/settings/api-keys/%00/{suffix}")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert counts() == before


# --- control characters in the query string: 400 ----------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "status=%00",
        "environment=live%01",
        "actor=%00",
        "since=2030-01-01%00",
        "%00=1",
        "cursor=%1B",
    ],
)
def test_a_control_character_in_an_api_query_is_a_validation_error(client, admin_token, query):
    path = "/api/v1/audit-events" if query.startswith(("actor", "since")) else "/api/v1/keys"
    error = assert_json_error(
        call(client, "GET", f"{path}?{query}", admin_token), 400, "validation_error"
    )
    assert not any(has_control_characters(name) for name in error.get("fields", {}))


def test_a_control_character_in_a_page_query_is_a_400_page(owner_client, org):
    response = owner_client.get(f"/orgs/{org.slug}/settings/audit-log/?actor=ops%07")
    assert response.status_code == 400
    assert b"Bad request" in response.content


# --- control characters in JSON bodies: 400 ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ok", "expires_at": "2030-01-01T00:00:00Z\u0000"}, "expires_at"),
        ({"name": "ok\u0000"}, "name"),
        ({"name": "bell\u0007"}, "name"),
        ({"name": "ok", "scopes": ["keys:read\u0000"]}, "scopes"),
        ({"name": "ok", "allowed_ips": ["10.0.0.0/8\u0000"]}, "allowed_ips"),
        ({"name": "ok", "rate_limit": "10/s\u0085"}, "rate_limit"),
        ({"name": "lone \ud800 surrogate"}, "name"),
    ],
)
def test_a_refused_character_in_a_json_body_is_a_validation_error(client, admin_token, body, field):
    before = counts()
    raw = json.dumps(body)  # ensure_ascii: NUL travels as \u0000, a surrogate as \ud800
    error = assert_json_error(
        call(client, "POST", "/api/v1/keys", admin_token, raw), 400, "validation_error"
    )
    assert field in error["fields"], error
    assert counts() == before


def test_a_nul_in_a_json_member_name_is_refused_without_echoing_it(client, admin_token):
    error = assert_json_error(
        call(client, "POST", "/api/v1/keys", admin_token, '{"na\\u0000me": "x"}'),
        400,
        "validation_error",
    )
    assert not any(has_control_characters(name) for name in error.get("fields", {}))


def test_a_nul_in_an_update_or_rotate_body_is_refused(client, admin_token, target):
    for method, path, body in [
        ("PATCH", f"/api/v1/keys/{target.id}", {"name": "a\u0000"}),
        ("PATCH", f"/api/v1/keys/{target.id}", {"expires_at": "2030-01-01T00:00:00Z\u0000"}),
        ("POST", f"/api/v1/keys/{target.id}/rotate", {"grace_period\u0000": 0}),
    ]:
        before = counts()
        assert_json_error(call(client, method, path, admin_token, body), 400, "validation_error")
        assert counts() == before
    target.refresh_from_db()
    assert target.replaced_by_id is None and target.expires_at is None


def test_tabs_and_newlines_in_a_json_body_are_not_control_character_errors(
    client, admin_token, target
):
    # Multi-line text is legitimate in a body; a one-line field refuses it itself.
    response = call(
        client, "PATCH", f"/api/v1/keys/{target.id}", admin_token, {"allowed_ips": ["10.0.0.0/8\n"]}
    )
    assert response.status_code == 200, response.content
    assert response.json()["allowed_ips"] == ["10.0.0.0/8"]


# --- headers that reach the database ------------------------------------------------------


def test_a_user_agent_with_control_characters_is_cleaned_before_it_is_stored(client, admin_token):
    response = call(
        client,
        "POST",
        "/api/v1/keys",
        admin_token,
        {"name": "from a strange client"},
        HTTP_USER_AGENT="curl/8\x00\x01\x7f\x85 (evil)\x1b[31m",
    )
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.filter(action="api_key.created").latest("seq")
    assert event.user_agent == "curl/8 (evil)[31m"


def test_a_session_cookie_with_a_nul_is_ignored_not_a_500(client, org):
    client.raise_request_exception = False
    client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
    response = client.get(f"/orgs/{org.slug}/settings/api-keys/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- form fields on pages -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "owner\x00@example.com", "password": "x"},
        {"username": "owner@example.com", "password": "x\x00"},
        {"username": "owner\x1b@example.com", "password": "x"},
    ],
)
def test_a_control_character_in_the_login_form_is_a_400_page(client, fields):
    client.raise_request_exception = False
    response = client.post("/accounts/login/", fields)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b"Bad request" in response.content


def test_a_control_character_in_a_settings_form_changes_nothing(owner_client, org):
    before = counts()
    response = owner_client.post(
        f"/orgs/{org.slug}/settings/api-keys/new/", {"name": "key\x00", "nonce": "n"}
    )
    assert response.status_code == 400
    assert counts() == before
    response = owner_client.post("/orgs/new/", {"name": "Tab\x0bCorp", "slug": ""})
    assert response.status_code == 400
    assert not org.__class__.objects.filter(name__startswith="Tab").exists()


def test_multi_line_text_in_a_form_is_not_refused_at_the_edge(owner_client, org):
    response = owner_client.get(f"/orgs/{org.slug}/settings/api-keys/new/")
    nonce = response.context["form"].initial["nonce"]
    response = owner_client.post(
        f"/orgs/{org.slug}/settings/api-keys/new/",
        {
            "name": "two blocks",
            "nonce": nonce,
            "kind": "organization",
            "scopes": ["keys:read"],
            "environment": "live",
            "expiry": "never",
            "allowed_ips": "10.0.0.0/8\r\n192.168.0.0/16",
        },
    )
    assert response.status_code == 200, response.content[:500]
    assert APIKey.objects.get(name="two blocks").allowed_ips == ["10.0.0.0/8", "192.168.0.0/16"]


# --- deep JSON and large bodies --------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 1000,
        "[" * 1000 + "]" * 1000,
        '{"a":' * 5000,
        '{"a":' * 5000 + "1" + "}" * 5000,
        '{"name": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}",
    ],
)
def test_deeply_nested_json_is_a_validation_error(client, admin_token, raw):
    before = counts()
    error = assert_json_error(
        call(client, "POST", "/api/v1/keys", admin_token, raw), 400, "validation_error"
    )
    assert error["message"]  # a sentence of ours; what it says is checked below
    assert counts() == before


def test_json_at_the_depth_limit_is_read(client, admin_token):
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    error = assert_json_error(
        call(client, "POST", "/api/v1/keys", admin_token, '{"name": ' + nested + "}"),
        400,
        "validation_error",
    )
    assert "name" in error["fields"]  # parsed, then refused by the field, not the depth


def test_the_depth_message_names_the_limit(client, admin_token):
    raw = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    error = call(client, "POST", "/api/v1/keys", admin_token, raw).json()["error"]
    assert str(MAX_JSON_DEPTH) in error["message"]


@pytest.mark.parametrize("size", [MB + 1, 3 * MB])
def test_a_body_over_the_limit_is_a_json_413(client, admin_token, size):
    before = counts()
    body = '{"name": "' + "a" * size + '"}'
    error = assert_json_error(
        call(client, "POST", "/api/v1/keys", admin_token, body), 413, "payload_too_large"
    )
    assert str(MB) in error["message"]
    assert counts() == before


def test_a_body_just_under_the_limit_is_read(client, admin_token):
    body = '{"name": "' + "a" * (MB - 100) + '"}'
    error = assert_json_error(
        call(client, "POST", "/api/v1/keys", admin_token, body), 400, "validation_error"
    )
    assert "name" in error["fields"]  # too long a name: read, then refused by the field


def test_a_body_over_the_limit_is_413_even_without_a_key(client):
    response = client.generic("POST", "/api/v1/keys", "x" * (MB + 1), "application/json")
    assert_json_error(response, 413, "payload_too_large")


def test_a_form_over_the_limit_is_a_413_page(client):
    response = client.post(
        "/accounts/login/",
        "username=" + "a" * (2 * MB),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")


# --- JSON parse errors say what is wrong, not what the parser is -------------------------


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        ("{not json", "(line 1, column 2)"),
        ('{"name": "x",}', "(line 1, column 14)"),
        ("", None),
        ("\xff", None),
        ('{"grace_period": NaN}', None),
        ('{"grace_period": ' + "9" * 5000 + "}", None),
    ],
)
def test_json_parse_errors_do_not_echo_parser_internals(client, admin_token, raw, position):
    response = client.generic(
        "POST",
        "/api/v1/keys",
        raw.encode("latin-1") if raw == "\xff" else raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {admin_token}",
    )
    error = assert_json_error(response, 400, "validation_error")
    message = error["message"]
    for internal in ("JSON parse error", "Expecting", "(char", "codec", "Exceeds the limit"):
        assert internal not in message, message
    if position:
        assert message == f"The request body is not valid JSON {position}."


# --- every /api/ answer is JSON ---------------------------------------------------------


def test_more_than_a_thousand_query_fields_is_a_json_400(client, admin_token):
    query = "&".join(f"f{i}=1" for i in range(1001))
    assert_json_error(
        call(client, "GET", f"/api/v1/keys?{query}", admin_token), 400, "validation_error"
    )


def test_more_than_a_thousand_query_fields_on_a_page_is_a_400_page(client):
    response = client.get("/accounts/login/?" + "&".join(f"f{i}=1" for i in range(1001)))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
def test_a_disallowed_host_is_a_json_400_on_the_api(client, admin_token, debug):
    with override_settings(DEBUG=debug):
        response = call(client, "GET", "/api/v1/whoami", admin_token, HTTP_HOST="evil.example")
    error = assert_json_error(response, 400, "validation_error")
    assert "Host" in error["message"]


def test_a_disallowed_host_on_a_page_keeps_djangos_400_page(client):
    response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png"])
def test_an_unsatisfiable_accept_still_gets_json(client, admin_token, accept):
    response = call(client, "GET", "/api/v1/whoami", admin_token, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    response = call(client, "GET", "/api/v1/keys/nope", admin_token, HTTP_ACCEPT=accept)
    assert_json_error(response, 404, "not_found")


def test_an_unknown_format_parameter_still_gets_json(client, admin_token):
    response = call(client, "GET", "/api/v1/whoami?format=xml", admin_token)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
