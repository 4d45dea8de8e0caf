"""An unknown key id costs the same work as a known id with a wrong secret.

Otherwise the time of a 401 tells which key ids exist. Timing itself is measured by
bench/key_id_timing.py (never asserted here); this checks the work that makes it:
both refusals read the database once and compute the same HMACs.
"""

from unittest import mock

from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.request import Request

from apikeys import tokens
from apikeys.authentication import APIKeyAuthentication, APIKeyRejected
from apikeys.cache import verified_keys


def refuse(token: str) -> tuple[int, int]:
    """Authenticate `token` (it must be refused); return (database queries, HMACs computed)."""
    django_request = RequestFactory().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    django_request.client_ip = "192.0.2.10"
    with (
        CaptureQueriesContext(connection) as queries,
        mock.patch.object(tokens, "hash_token", wraps=tokens.hash_token) as hmacs,
    ):
        try:
            APIKeyAuthentication().authenticate(Request(django_request))
        except APIKeyRejected as rejected:
            assert rejected.keyward_error.code == "invalid_key"
        else:
            raise AssertionError("the token was accepted")
    return len(queries), hmacs.call_count


def test_an_unknown_id_and_a_wrong_secret_cost_the_same(org, make_key, client):
    key, token = make_key(org, scopes=["keys:read"])
    # The key is in use: this process has it cached, as a busy server would.
    for _ in range(2):
        assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert verified_keys.get(key.id) is not None
    wrong_secret = tokens.generate(key.environment, key_id=key.id).token
    unknown_id = tokens.generate(key.environment).token
    known_cost = refuse(wrong_secret)
    unknown_cost = refuse(unknown_id)
    assert known_cost == unknown_cost
    assert known_cost[0] == 1  # one lookup each


def test_a_warm_key_with_its_secret_costs_one_hmac_and_no_lookup(org, make_key, client):
    _key, token = make_key(org, scopes=["keys:read"])
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    django_request = RequestFactory().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    django_request.client_ip = "192.0.2.10"
    with (
        CaptureQueriesContext(connection) as queries,
        mock.patch.object(tokens, "hash_token", wraps=tokens.hash_token) as hmacs,
    ):
        user, authenticated = APIKeyAuthentication().authenticate(Request(django_request))
    assert authenticated.pk == _key.pk
    assert (len(queries), hmacs.call_count) == (0, 1)


def test_a_secret_newer_than_the_cached_hash_is_checked_against_the_row(org, make_key, client):
    """The database is the truth: a hash changed behind this process's cache still counts."""
    key, token = make_key(org, scopes=["keys:read"])
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    newer = tokens.generate(key.environment, key_id=key.id).token
    type(key).objects.filter(pk=key.pk).update(secret_hash=tokens.hash_token(newer))
    assert verified_keys.get(key.id).key.secret_hash == tokens.hash_token(token)  # still cached
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {newer}")
    assert response.status_code == 200
    assert response.json()["key"]["id"] == key.id
