"""Property tests: no input makes the token parser or the bearer header do anything undocumented.

The parser may only return a ParsedToken or raise MalformedToken; a request may only
get `401 invalid_key` or `401 missing_key` for a header that is not a valid key; and a
token one character away from a real one is refused by the checksum, before any query.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apikeys import tokens
from apikeys.authentication import APIKeyAuthentication, APIKeyRejected

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
    forget_invalid_keys()  # the per-address limit on invalid keys (§10) is not under test here
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
    forget_invalid_keys()  # the per-address limit on invalid keys (§10) is not under test here
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
