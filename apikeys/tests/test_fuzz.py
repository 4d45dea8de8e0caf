"""Property tests: no input makes the token parser, the bearer header or any API operation
do anything undocumented.

The parser may only return a ParsedToken or raise MalformedToken; a request may only
get `401 invalid_key` or `401 missing_key` for a header that is not a valid key; a
token one character away from a real one is refused by the checksum, before any query;
and control characters, deep JSON and large bodies sent to every API operation get only
the documented 4xx answers, writing nothing.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apikeys import tokens
from apikeys.authentication import APIKeyAuthentication, APIKeyRejected
from apikeys.models import APIKey
from audit.models import AuditEvent
from config.input import MAX_JSON_DEPTH
from config.openapi import ERROR_CODES

FUZZ = settings(max_examples=300, deadline=None)
FUZZ_DB = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

latin1 = st.binary(max_size=300).map(lambda raw: raw.decode("latin-1"))
long_text = st.text(min_size=2_000, max_size=20_000, alphabet=st.characters(codec="utf-8"))
words = st.lists(st.text(min_size=1, max_size=70), min_size=1, max_size=40).map(" ".join)
token_shaped = st.from_regex(
    r"\Akw_(live|test)_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\Z", fullmatch=True
) | st.from_regex(r"\A[a-z]{1,9}_[a-z]{3,5}_[0-9A-Za-z_]{10,60}\Z", fullmatch=True)
any_text = st.text() | latin1 | long_text | words | token_shaped


def _token_from(environment: str, key_id: str, secret: str) -> str:
    body = f"{tokens.brand()}_{environment}_{key_id}_{secret}"
    return body + tokens.checksum(body)


# Built from Hypothesis's own draws (not `secrets`), so a failing example replays exactly.
_base62 = st.sampled_from(tokens.ALPHABET)
real_tokens = st.builds(
    _token_from,
    st.sampled_from(tokens.ENVIRONMENTS),
    st.text(_base62, min_size=tokens.KEY_ID_LENGTH, max_size=tokens.KEY_ID_LENGTH),
    st.text(_base62, min_size=tokens.SECRET_LENGTH, max_size=tokens.SECRET_LENGTH),
)
alphabet_and_more = st.sampled_from(tokens.ALPHABET + "_- \t\x00é€\u200b/+=")


def one_character_changed(token: str, position: int, replacement: str) -> str:
    return token[:position] + replacement + token[position + 1 :]


@FUZZ
@given(any_text)
def test_parse_returns_a_token_or_raises_malformed_token_only(text):
    try:
        parsed = tokens.parse(text)
    except tokens.MalformedToken:
        assert not tokens.looks_like_token(text)
    else:
        assert parsed.token == text
        assert tokens.checksum(text[:-6]) == text[-6:]


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_parse_refuses_what_is_not_text(value):
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(value)


@FUZZ
@given(real_tokens)
def test_generated_tokens_parse_back(token):
    parsed = tokens.parse(token)
    assert parsed.prefix == token[: token.rindex("_")]


@FUZZ
@given(real_tokens, st.data())
def test_any_single_character_change_is_refused(token, data):
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(alphabet_and_more.filter(lambda c: c != token[position]))
    assert not tokens.looks_like_token(one_character_changed(token, position, replacement))


def test_every_single_character_change_of_one_token_is_refused_exhaustively():
    token = tokens.generate("live").token
    changes = 0
    for position in range(len(token)):
        for replacement in tokens.ALPHABET + "_":
            if replacement != token[position]:
                assert not tokens.looks_like_token(
                    one_character_changed(token, position, replacement)
                )
                changes += 1
    assert changes == len(token) * 62


def forget_invalid_keys() -> None:
    """Forget the invalid keys counted so far: in Redis, and in this process's tally."""
    cache.clear()
    APIKeyAuthentication.invalid_key_guard.discard()


def authenticate(header: str):
    request = Request(APIRequestFactory().get("/api/v1/whoami", HTTP_AUTHORIZATION=header))
    return APIKeyAuthentication().authenticate(request)


@FUZZ_DB
@given(header=any_text | any_text.map(lambda t: f"Bearer {t}"))
def test_authenticator_returns_none_or_invalid_key_for_any_header(db, header):
    forget_invalid_keys()  # the per-address limit on invalid keys is not under test here
    with CaptureQueriesContext(connection) as queries:
        try:
            result = authenticate(header)
        except APIKeyRejected as rejected:
            assert rejected.keyward_error.code == "invalid_key"
        else:
            assert result is None  # another scheme: left to other authenticators
    if not any(tokens.looks_like_token(word) for word in header.split()):
        assert len(queries) == 0


@FUZZ_DB
@given(header=any_text | any_text.map(lambda t: f"Bearer {t}"))
def test_any_authorization_header_gets_a_documented_401_never_a_500(client, db, header):
    forget_invalid_keys()  # the per-address limit on invalid keys is not under test here
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["error"]["code"] in {"invalid_key", "missing_key"}
    assert set(body["error"]) >= {"code", "message", "request_id"}
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


@pytest.fixture
def issued(org, make_key):
    return make_key(org, scopes=["keys:read"])[1]


@FUZZ_DB
@given(data=st.data())
def test_a_near_miss_of_a_real_key_is_refused_without_a_query(client, issued, data):
    forget_invalid_keys()
    position = data.draw(st.integers(0, len(issued) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(tokens.ALPHABET).filter(lambda c: c != issued[position]),
        label="replacement",
    )
    changed = one_character_changed(issued, position, replacement)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {changed}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    assert len(queries) == 0


def test_every_near_miss_through_the_authenticator_costs_no_query(
    issued, django_assert_num_queries
):
    refused = 0
    with django_assert_num_queries(0):
        for position in range(len(issued)):
            for replacement in tokens.ALPHABET + "_":
                if replacement == issued[position]:
                    continue
                with pytest.raises(APIKeyRejected):
                    authenticate(f"Bearer {one_character_changed(issued, position, replacement)}")
                refused += 1
    assert refused == len(issued) * 62


# --- Every API operation against hostile input -------------------------------------------
#
# NUL and other control characters in the path, the query and the JSON body, JSON nested
# past the depth limit, bodies past the size limit, and control characters in the
# User-Agent, sent to every operation the OpenAPI document lists (so an operation added
# later is fuzzed with no change here), with an admin key and with none. Each answer must
# be a status that operation documents, in the JSON error shape with a documented code,
# never a 5xx; a refused request writes nothing. On PostgreSQL (CI's second run) a NUL
# that got through to a query would be a 500.

HOSTILE_EXAMPLES = 40  # per operation; 8 operations take about 10 s on 2 cores


# Built at collection, as Schemathesis's loader is in test_api_contract.py: no database needed.
API_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
API_OPERATIONS = [
    (route, method.upper(), operation)
    for route, item in sorted(API_SCHEMA["paths"].items())
    for method, operation in sorted(item.items())
    if method in {"get", "post", "put", "patch", "delete"}
]


DOCUMENTED_CODES = {code.strip() for code in ERROR_CODES.split(",")}
any_control = st.characters(categories=["Cc"])
body_control = st.characters(categories=["Cc"]).filter(lambda c: c not in "\t\n\r") | (
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
)
plain = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=12)


def _with(control: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, c, b: a + c + b, plain, control, plain)


url_hostile = _with(any_control)
body_hostile = _with(body_control)
json_leaf = st.none() | st.booleans() | st.integers() | plain
json_doc = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain, inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture
def fuzz_world(org, make_key):
    """Return an admin token and real key ids to aim the benign parts of requests at."""
    _, token = make_key(org, scopes=["admin"])
    targets = [make_key(org, scopes=["keys:read"])[0].id for _ in range(2)]
    return token, targets


def _hostile_request(data, route: str, method: str, operation: dict, targets: list[str]):
    """Draw one hostile request for the operation; return it and the answer it must get."""
    kind = data.draw(
        st.sampled_from(["path", "query", "json", "deep", "large", "user_agent"]), label="kind"
    )
    if kind == "path" and "{" not in route:
        kind = "query"
    takes_body = "requestBody" in operation
    path_values = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            benign = data.draw(st.sampled_from(targets)) if parameter["name"] == "key_id" else "x1"
            path_values[parameter["name"]] = benign
    if kind == "path":
        name = data.draw(st.sampled_from(sorted(path_values)), label="parameter")
        path_values[name] = data.draw(url_hostile, label="value")
    path = route
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    query, body, headers, must_be = "", None, {}, None
    if kind == "path":
        must_be = {(404, "not_found")}
    elif kind == "query":
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        name = data.draw(st.sampled_from([*names, "x"]) | url_hostile, label="name")
        value = data.draw(url_hostile | plain, label="query value")
        if not any(ch in name + value for ch in map(chr, [*range(32), *range(127, 160)])):
            value += "\x00"
        query = "?" + urlencode({name: value})
        must_be = {(400, "validation_error")}
    elif kind == "json":
        document = data.draw(st.dictionaries(plain, json_doc, max_size=3), label="body")
        properties = sorted(_request_properties(operation) or ["name"])
        where = data.draw(st.sampled_from(["value", "list", "nested", "name"]), label="where")
        hostile = data.draw(body_hostile, label="hostile")
        member = data.draw(st.sampled_from(properties), label="member")
        if where == "value":
            document[member] = hostile
        elif where == "list":
            document[member] = [*data.draw(st.lists(plain, max_size=2)), hostile]
        elif where == "nested":
            document[member] = {"inner": [hostile]}
        else:
            document[hostile] = "x"
        body = json.dumps(document)
        must_be = {(400, "validation_error")} if takes_body else None
    elif kind == "deep":
        depth = data.draw(st.integers(MAX_JSON_DEPTH + 1, 5_000), label="depth")
        opener, closer = data.draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        closed = data.draw(st.booleans(), label="closed")
        body = opener * depth + (("0" + closer * depth) if closed else "")
        must_be = {(400, "validation_error")} if takes_body else None
    elif kind == "large":
        limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        size = data.draw(st.integers(limit + 1, 3 * limit), label="size")
        body = '{"name": "' + "a" * size + '"}'
        must_be = {(413, "payload_too_large")}
    else:
        headers["HTTP_USER_AGENT"] = data.draw(url_hostile, label="user agent")
        body = "{}" if takes_body else None
    return kind, method, path + query, body, headers, must_be


def _request_properties(operation: dict) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if not ref:
        return []
    name = ref.rsplit("/", 1)[-1]
    return list(API_SCHEMA["components"]["schemas"].get(name, {}).get("properties", {}))


@pytest.mark.parametrize(
    ("route", "method", "operation"),
    API_OPERATIONS,
    ids=[f"{method} {route}" for route, method, _ in API_OPERATIONS],
)
@settings(
    max_examples=HOSTILE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@pytest.mark.django_db
def test_hostile_input_gets_only_documented_answers(
    client, fuzz_world, route, method, operation, data
):
    token, targets = fuzz_world
    cache.clear()  # neither rate limits nor the invalid-key guard are under test here
    kind, method, url, body, headers, must_be = _hostile_request(
        data, route, method, operation, targets
    )
    with_key = data.draw(st.booleans(), label="with a key")
    if with_key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    client.raise_request_exception = False
    before = (APIKey.objects.count(), AuditEvent.objects.count())
    response = client.generic(
        method, url, body if body is not None else "", content_type="application/json", **headers
    )
    status = response.status_code
    event(f"{kind} {'with' if with_key else 'without'} a key: {status}")
    assert status < 500, (kind, response.content[:300])
    assert response["Content-Type"] == "application/json", (kind, response.content[:300])
    assert str(status) in operation["responses"] or status in (405,), (kind, status)
    if status >= 400:
        error = response.json()["error"]
        assert error["code"] in DOCUMENTED_CODES, error
        assert error["request_id"] == response["X-Request-Id"]
        assert (APIKey.objects.count(), AuditEvent.objects.count()) == before, kind
    if must_be is not None and (with_key or kind in ("path", "query", "large")):
        assert (status, response.json()["error"]["code"]) in must_be, (kind, response.content)
    if kind == "user_agent":
        for agent in AuditEvent.objects.values_list("user_agent", flat=True):
            assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in agent), agent
