"""Schemathesis drives the API in-process from its own OpenAPI document.

For every operation, with keys of several scopes: no 5xx, every status, header and
body conforms to the schema, and every error body has the JSON error shape.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.wsgi import application

EXAMPLES_PER_OPERATION = 25
SCOPE_SETS = {
    "admin": ["admin"],
    "read": ["keys:read"],
    "write": ["keys:write"],
    "none": [],
}


# Loaded at collection: fetching the schema needs no database. (The lazy
# `schemathesis.pytest.from_fixture` loader does not work with pytest 9.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application)
# Unknown query parameters are ignored, as most HTTP APIs do (a cache-buster breaks
# nothing); do not count them as invalid input that must be refused.
schema.config.generation.update(allow_extra_parameters=False)


@pytest.fixture
def test_connection_kept():
    """Keep the test's database connection across in-process requests, as Django's client does.

    Schemathesis calls the WSGI application directly, whose request_finished signal
    would return the connection (and its test transaction) to the pool.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def callers(test_connection_kept, org, make_key):
    """Return a token per scope set, and a few other keys of the organisation to aim at."""
    tokens = {name: make_key(org, scopes=scopes)[1] for name, scopes in SCOPE_SETS.items()}
    targets = [make_key(org, scopes=["keys:read"])[0].id for _ in range(3)]
    return tokens, targets


def assert_error_shape(response) -> None:
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert [error["request_id"]] == response.headers["x-request-id"], body


@schema.parametrize()
@schema.given(scope_set=st.sampled_from(sorted(SCOPE_SETS)))
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_api_conforms_to_its_schema(case, callers, scope_set):
    tokens, targets = callers
    token = tokens[scope_set]
    if case.path_parameters and "key_id" in case.path_parameters:
        # Aim half the cases at real keys of the caller's organisation, the rest at noise.
        generated = str(case.path_parameters["key_id"])
        if len(generated) % 2 == 0:
            case.path_parameters["key_id"] = targets[len(generated) % len(targets)]
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        # Schema-valid bodies may still break business rules (an unknown scope, an
        # expiry in the past, a malformed CIDR): those are 400s by design, not bugs.
        excluded_checks=[positive_data_acceptance],
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_shape(response)


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["null", "[]", "0", "false", '""', '"grace"'])
def test_rotate_refuses_a_body_that_is_not_an_object(client, org, make_key, body):
    """Found by Schemathesis: a JSON null (or any falsy body) was taken for no body."""
    _, token = make_key(org, scopes=["keys:write"])
    target, _ = make_key(org, scopes=["keys:read"])
    response = client.post(
        f"/api/v1/keys/{target.id}/rotate",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    target.refresh_from_db()
    assert target.replaced_by_id is None


@pytest.mark.django_db
def test_rotate_without_a_body_uses_the_default_grace_period(client, org, make_key):
    _, token = make_key(org, scopes=["keys:read", "keys:write"])
    target, _ = make_key(org, scopes=["keys:read"])
    response = client.generic(
        "POST", f"/api/v1/keys/{target.id}/rotate", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 201, response.content
    assert response.json()["previous"]["id"] == target.id
