"""Middleware that every request passes: request ids, no keys in URLs, and the CSP."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.context import RequestContext, reset_context, set_context
from config.errors import KeyInUrl, Unavailable, error_response
from config.net import client_ip

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
USER_AGENT_MAX = 512


def request_id_from(value: str | None) -> str:
    """Return the incoming request id when well-formed, else a new one."""
    if value and REQUEST_ID_RE.match(value):
        return value
    return uuid.uuid4().hex


def trace_id_from(traceparent: str | None) -> str:
    """Return the W3C trace id of a `traceparent` header, or an empty string."""
    match = TRACEPARENT_RE.match((traceparent or "").strip().lower())
    if not match or match.group(1) == "0" * 32:
        return ""
    return match.group(1)


class RequestIdMiddleware:
    """Give every request an id, echo it as X-Request-Id, and expose its context."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request.client_ip = client_ip(request)
        context = RequestContext(
            request_id=request.request_id,
            ip=request.client_ip,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX],
            trace_id=trace_id_from(request.META.get("HTTP_TRACEPARENT")),
        )
        token = set_context(context)
        try:
            response = self.get_response(request)
        finally:
            reset_context(token)
        response["X-Request-Id"] = request.request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        """Answer a lost database on the API with 503 rather than a crash page."""
        from config.errors import _translate

        if request.path.startswith("/api/") and isinstance(_translate(exception), Unavailable):
            return error_response(Unavailable())
        return None


class KeyInUrlMiddleware:
    """Refuse any API request whose query string carries something shaped like a key."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        brand = re.escape(settings.KEYWARD_TOKEN_BRAND)
        self.pattern = re.compile(rf"{brand}_(?:pub_)?(?:live|test|dev)_[0-9A-Za-z]{{6,}}")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.META.get("QUERY_STRING"):
            values = [v for values in request.GET.lists() for v in (values[0], *values[1])]
            if any(self.pattern.search(value) for value in values):
                return error_response(KeyInUrl())
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Send `Content-Security-Policy` on every response that does not set its own."""

    header = "Content-Security-Policy"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and self.header not in response:
            response[self.header] = self.policy
        return response
