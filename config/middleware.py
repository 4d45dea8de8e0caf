"""Middleware that every request passes: request ids, the input edge, no keys in URLs, the CSP."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from io import BytesIO

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.context import RequestContext, reset_context, set_context
from config.errors import (
    KeyInUrl,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    ValidationFailed,
    as_keyward_error,
    error_response,
    handler400,
    handler404,
)
from config.input import (
    CONTROL_CHARACTER_MESSAGE,
    first_field_with,
    has_control_characters,
    max_body_bytes,
    too_large_message,
    without_control_characters,
)
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
            user_agent=without_control_characters(request.META.get("HTTP_USER_AGENT", ""))[
                :USER_AGENT_MAX
            ],
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
        if request.path.startswith("/api/") and isinstance(
            as_keyward_error(exception), Unavailable
        ):
            return error_response(Unavailable())
        return None


def _no_control_characters(text: str) -> bool:
    return not has_control_characters(text)


class RequestEdgeMiddleware:
    """Refuse, before any view or other middleware reads it, input no view should see.

    The rules are config.input's; JSON bodies are checked by the API's parser
    (config.content). Under /api/ every refusal is the JSON error shape, whatever
    DEBUG says; pages get the 400, 404 or 413 page.

    - a control character in the path: 404, since the path names nothing;
    - a Host header outside ALLOWED_HOSTS: 400 (checked here under /api/ with DEBUG
      only; otherwise Django's check reaches config.errors.handler400);
    - a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE: 413, after reading and throwing
      away up to DRAIN_LIMIT bytes of it, so that a client still sending can read the
      answer instead of meeting a reset; a chunked body (no Content-Length) is read
      here within the same limit, since Django would read none of it;
    - a control character in a query-string name or value, a refused character in a
      form field, or more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS: 400;
    - a cookie holding a control character is dropped, as if it had not been sent.
    """

    DRAIN_LIMIT = 64 * 1024 * 1024
    DRAIN_CHUNK = 256 * 1024

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.refusal(request) or self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        """Return the answer to a request that breaks an edge rule, else None."""
        api = request.path.startswith("/api/")
        if has_control_characters(request.path):
            if api:
                return error_response(NotFound("No such API path."))
            return handler404(request, Http404())
        if api and settings.DEBUG:
            # Without DEBUG, Django's own Host check reaches handler400, which answers in
            # JSON; with it, Django would show its HTML debug page.
            try:
                request.get_host()
            except DisallowedHost as exc:
                return self.suspicious(request, exc)
        length = self.content_length(request)
        if length > max_body_bytes():
            self.drain(request, length)
            return self.too_large(request, api)
        if self.is_chunked(request) and not self.read_chunked(request):
            return self.too_large(request, api)
        field = None
        try:
            # Parsed here rather than later (the result is kept): no extra work.
            if request.META.get("QUERY_STRING"):
                field = first_field_with(request.GET.lists(), acceptable=_no_control_characters)
            if field is None and not api and request.method == "POST":
                field = first_field_with(request.POST.lists())
        except RequestDataTooBig:
            return self.too_large(request, api)
        except SuspiciousOperation as exc:
            return self.suspicious(request, exc)
        if field is not None:
            if not api:
                return handler400(request, None)
            if has_control_characters(field):  # never echo the refused name itself
                return error_response(ValidationFailed(CONTROL_CHARACTER_MESSAGE))
            return error_response(ValidationFailed.on(field, CONTROL_CHARACTER_MESSAGE))
        if request.META.get("HTTP_COOKIE") and any(
            has_control_characters(value) for value in request.COOKIES.values()
        ):
            request.COOKIES = {
                name: value
                for name, value in request.COOKIES.items()
                if not has_control_characters(value)
            }
        return None

    @staticmethod
    def content_length(request: HttpRequest) -> int:
        try:
            return int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 0

    @staticmethod
    def is_chunked(request: HttpRequest) -> bool:
        """Return whether the body comes without a Content-Length, in chunks the server ends."""
        return (
            "CONTENT_LENGTH" not in request.META
            and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
            and bool(request.META.get("wsgi.input_terminated"))
        )

    def read_chunked(self, request: HttpRequest) -> bool:
        """Read a chunked body for Django, which reads none without a Content-Length.

        Return False, after draining, when it is over the limit. Without this, gunicorn
        hands the view an empty body (a rotate's grace period silently lost) and resets
        the connection when a large one is left unread.
        """
        limit = max_body_bytes()
        stream = request.META["wsgi.input"]
        body = stream.read(limit + 1)
        if len(body) > limit:
            drained = len(body)
            while drained < self.DRAIN_LIMIT and (chunk := stream.read(self.DRAIN_CHUNK)):
                drained += len(chunk)
            return False
        request._stream = BytesIO(body)
        request.META["CONTENT_LENGTH"] = str(len(body))
        return True

    def drain(self, request: HttpRequest, length: int) -> None:
        """Read and discard a refused body, when small enough, so the socket closes cleanly."""
        if length > self.DRAIN_LIMIT:
            return
        try:
            while request.read(self.DRAIN_CHUNK):
                pass
        except OSError:  # the client went away: nobody is left to answer
            pass

    def too_large(self, request: HttpRequest, api: bool) -> HttpResponse:
        if api:
            return error_response(PayloadTooLarge(too_large_message()))
        return TemplateResponse(request, "413.html", status=413).render()

    def suspicious(self, request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
        """Log as Django logs a SuspiciousOperation, then answer 400 (JSON under /api/)."""
        logging.getLogger(f"django.security.{type(exc).__name__}").error(
            str(exc), extra={"status_code": 400, "request": request}
        )
        return handler400(request, exc)


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
