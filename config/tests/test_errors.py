"""One class per error code: each code the API answers is defined once, in config/errors.py."""

from __future__ import annotations

import re

import pytest
from django.db import OperationalError
from rest_framework import exceptions as drf

from config import errors
from config.errors import KeywardError, as_keyward_error, error_classes
from config.openapi import ERROR_CODES, ERROR_DESCRIPTIONS

# The codes of the error table in the docs, and those the next features answer with.
EXPECTED = {
    "validation_error": 400,
    "key_in_url": 400,
    "missing_key": 401,
    "invalid_key": 401,
    "expired_key": 401,
    "invalid_signature": 401,
    "missing_scope": 403,
    "scope_not_allowed": 403,
    "forbidden": 403,
    "ip_not_allowed": 403,
    "origin_not_allowed": 403,
    "publishable_key_not_allowed": 403,
    "resource_not_allowed": 403,
    "quota_exceeded": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "conflict": 409,
    "key_revoked": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal_error": 500,
    "unavailable": 503,
}


def test_every_code_has_exactly_one_class_with_its_status():
    classes = error_classes()
    assert {cls.code: cls.status for cls in classes} == EXPECTED
    assert len({cls.code for cls in classes}) == len(classes)
    assert [cls.status for cls in classes] == sorted(cls.status for cls in classes)
    for cls in classes:
        assert re.fullmatch(r"[a-z][a-z_]*", cls.code)
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} says when it is raised"


@pytest.mark.parametrize(
    "cls", [c for c in error_classes() if c not in (errors.MissingScope, errors.ScopeNotAllowed)]
)
def test_each_class_raises_with_a_sentence_for_people(cls):
    error = cls(retry_after=3) if cls is errors.RateLimited else cls()
    assert error.message.endswith(".")
    assert (error.status, error.code) == (cls.status, cls.code)


def test_the_base_class_carries_no_code_and_a_second_class_cannot_take_a_code():
    with pytest.raises(TypeError, match="raise a subclass"):
        KeywardError("no code")
    with pytest.raises(TypeError, match="repeats the code not_found"):

        class Missing(KeywardError):
            status = 404
            code = "not_found"


@pytest.mark.parametrize(
    ("exception", "cls"),
    [
        (drf.MethodNotAllowed("DELETE"), errors.MethodNotAllowed),
        (drf.NotAcceptable(), errors.NotAcceptable),
        (drf.NotAuthenticated(), errors.MissingKey),
        (drf.AuthenticationFailed(), errors.InvalidKey),
        (drf.Throttled(wait=7), errors.RateLimited),
        (drf.NotFound(), errors.NotFound),
        (drf.PermissionDenied(), errors.Forbidden),
        (drf.ParseError(), errors.ValidationFailed),
        (OperationalError("server closed the connection"), errors.Unavailable),
    ],
)
def test_drf_and_django_exceptions_become_the_class_of_their_code(exception, cls):
    assert type(as_keyward_error(exception)) is cls


def test_the_openapi_list_of_codes_is_every_class():
    assert ERROR_CODES.split(", ") == [cls.code for cls in error_classes()]
    named = set(re.findall(r"`([a-z_]+)`", " ".join(ERROR_DESCRIPTIONS.values())))
    assert named <= set(EXPECTED), "a documented code without a class"
