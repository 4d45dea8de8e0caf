"""Tokens never reach a log line, an error report or a rendered page."""

from __future__ import annotations

import io
import logging
import secrets
import sys
from collections.abc import Callable

import pytest
from django.conf import settings
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path
from django.views.debug import get_exception_reporter_class

from apikeys import tokens
from apikeys.services import api_key_revoke
from audit.actors import Actor
from config.logging import RedactTokensFilter, redact

logger = logging.getLogger("keyward.careless")
SESSION = secrets.token_hex(16)  # made at run time: the report shows this file's source lines


class CarelessLoggingMiddleware:
    """Log what a careless developer would: every header, the whole META, at every level."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        logger.info(request.headers)
        logger.warning("META: %s", request.META)
        logger.error("Authorization was %r", request.headers.get("Authorization"))
        if request.headers.get("X-Crash"):
            raise RuntimeError(f"crashed while holding {request.headers.get('Authorization')}")
        return self.get_response(request)


def crashing_view(request: HttpRequest) -> HttpResponse:
    """A plain Django view: its crash reaches Django's error report (DRF's would not)."""
    token = request.headers["X-Token"]
    raise ValueError(f"could not use {token}")


urlpatterns = [path("crash", crashing_view)]


@pytest.fixture
def log_output():
    """Capture what the configured root handlers write (not pytest's own capture)."""
    buffer = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    handlers = [h for h in handlers if not type(h).__module__.startswith("_pytest")]
    assert handlers, "LOGGING should give the root logger a stream handler"
    previous = [h.setStream(buffer) for h in handlers]
    yield buffer
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)


def test_every_handler_in_logging_settings_has_the_filter():
    assert settings.LOGGING["filters"]["redact_tokens"]["()"] == "config.logging.RedactTokensFilter"
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_tokens" in handler.get("filters", []), name


def all_configured_handlers():
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for each in loggers:
        for handler in each.handlers:
            if isinstance(handler, logging.NullHandler):
                continue  # a library's placeholder: it writes nothing
            if not type(handler).__module__.startswith("_pytest"):
                yield each.name, handler


def test_every_live_handler_has_the_filter_django_defaults_included():
    handlers = list(all_configured_handlers())
    assert {name for name, _ in handlers} >= {"root", "django", "django.server"}
    for name, handler in handlers:
        assert any(isinstance(f, RedactTokensFilter) for f in handler.filters), (name, handler)


def test_redact_keeps_the_prefix_and_drops_the_secret():
    token = tokens.generate("live").token
    parsed = tokens.parse(token)
    text = redact(f"headers={{'Authorization': 'Bearer {token}'}}")
    assert token not in text
    assert f"{parsed.prefix}_…" in text
    assert parsed.token[-10:] not in text


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t + "XYZ",  # padded
        lambda t: t[:-6] + "000000",  # wrong checksum
        lambda t: t.replace("_live_", "_test_"),
    ],
)
def test_redact_masks_token_shaped_text_even_when_not_valid(mangle):
    text = mangle(tokens.generate("live").token)
    secret_part = text.split("_", 3)[3]
    assert secret_part not in redact(f"x={text};")


def test_redact_leaves_ordinary_text_alone():
    text = "GET /api/v1/keys 200 kw_live_ short words live_test_"
    assert redact(text) == text


@override_settings(KEYWARD_TOKEN_BRAND="acme")
def test_redact_follows_the_deployment_brand():
    token = tokens.generate("test").token
    assert token.startswith("acme_test_")
    assert token not in redact(token)


def test_the_filter_masks_args_traceback_and_stack(log_output):
    token = tokens.generate("live").token
    try:
        raise RuntimeError(f"failed for {token}")
    except RuntimeError:
        logging.getLogger("keyward.test").exception("header %s", {"Authorization": token})
    logging.getLogger("keyward.test").warning("stack", stack_info=True, extra={"t": token})
    written = log_output.getvalue()
    assert "RuntimeError" in written
    assert tokens.parse(token).prefix in written
    assert token not in written


@pytest.mark.django_db
def test_no_token_is_logged_during_requests_with_valid_invalid_and_revoked_keys(
    log_output, org, make_key
):
    valid_key, valid = make_key(org, scopes=["keys:read"])
    revoked_key, revoked = make_key(org, scopes=["keys:read"])
    api_key_revoke(key=revoked_key, actor=Actor.system("test"))
    wrong_secret = tokens.generate("live", key_id=valid_key.id).token  # right id, valid checksum
    bad_checksum = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    issued = [valid, revoked, wrong_secret, bad_checksum]
    middleware = [*settings.MIDDLEWARE, "config.tests.test_redaction.CarelessLoggingMiddleware"]
    client = Client(raise_request_exception=False)
    with override_settings(MIDDLEWARE=middleware):
        statuses = [
            client.get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}").status_code
            for token in issued
        ]
        in_url = client.get(f"/api/v1/whoami?key={valid}").status_code
        crashed = client.get(
            "/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {valid}", HTTP_X_CRASH="1"
        ).status_code
    assert statuses == [200, 401, 401, 401]
    assert (in_url, crashed) == (400, 500)
    written = log_output.getvalue()
    assert "META" in written and "Internal Server Error" in written  # we did capture the logs
    assert valid_key.prefix in written
    for token in issued:
        assert token not in written
        assert token.split("_", 3)[3] not in written


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, ADMINS=[("Ops", "ops@example.com")])
def test_mailed_error_report_holds_no_token_and_no_authorization_value(make_key, org):
    key, token = make_key(org)
    client = Client(raise_request_exception=False)
    response = client.get(
        "/crash",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_TOKEN=token,
        HTTP_COOKIE=f"sessionid={SESSION}",
    )
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    report = mail.outbox[0].body + "".join(
        str(content) for content, _mimetype in mail.outbox[0].alternatives
    )
    assert "could not use" in report  # the report is there, with its exception
    assert token not in report
    assert SESSION not in report
    assert tokens.parse(token).prefix in report


def crash_with_token_in_locals(token: str):
    header = f"Bearer {token}"  # noqa: F841 - a local the report would show
    raise ValueError(f"rejected {token}")


@pytest.mark.parametrize("debug", [False, True])
def test_exception_reporter_masks_authorization_and_tokens(debug):
    token = tokens.generate("live").token
    request = RequestFactory().get(
        "/api/v1/whoami",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_FORWARDED_TOKEN=token,
        HTTP_COOKIE=f"sessionid={SESSION}",
    )
    with override_settings(DEBUG=debug):
        try:
            crash_with_token_in_locals(token)
        except ValueError:
            reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    for output in (html, text):
        assert "crash_with_token_in_locals" in output
        assert "HTTP_AUTHORIZATION" in output
        assert token not in output
        assert token.split("_", 3)[3] not in output
        assert SESSION not in output


@pytest.mark.django_db
@override_settings(DEBUG=True, ROOT_URLCONF=__name__)
def test_debug_error_page_shows_no_token(make_key, org):
    key, token = make_key(org)
    client = Client(raise_request_exception=False)
    response = client.get("/crash", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_TOKEN=token)
    assert response.status_code == 500
    assert b"could not use" in response.content
    assert token.encode() not in response.content


def test_only_the_json_renderer_is_configured():
    assert settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] == [
        "rest_framework.renderers.JSONRenderer"
    ]


@pytest.mark.django_db
def test_no_browsable_api_even_when_a_browser_asks_for_html(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    response = client.get(
        "/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="text/html"
    )
    assert response["Content-Type"].startswith("application/json")
    assert b"<html" not in response.content.lower()
    assert token.encode() not in response.content


@pytest.mark.parametrize(
    ("environment", "publishable"), [("dev", False), ("live", True), ("dev", True)]
)
def test_redact_masks_dev_and_publishable_tokens_to_their_prefix(environment, publishable):
    parsed = tokens.generate(environment, publishable=publishable)
    text = redact(f"Authorization: Bearer {parsed.token}")
    assert parsed.token not in text and parsed.token[-12:] not in text
    assert f"{parsed.prefix}_…" in text
