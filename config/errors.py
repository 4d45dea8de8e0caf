"""The one JSON error shape of the API, and the exceptions that produce it."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from config.context import current_request_id
from config.input import too_large_message

logger = logging.getLogger("keyward.errors")

RETRY_AFTER_UNAVAILABLE = 5


class KeywardError(Exception):
    """An error with a status and a code of docs/reference/errors.md, raised by services and views.

    Each code has exactly one subclass below, which sets `status`, `code` and
    `default_message`; `error_classes()` lists them, and the OpenAPI description
    takes its list of codes from there. Raise a subclass, never this class.
    """

    status: ClassVar[int]
    code: ClassVar[str]
    default_message: ClassVar[str] = "The request is not valid."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        if not hasattr(type(self), "code"):
            raise TypeError(f"{type(self).__name__} has no error code; raise a subclass.")
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is None:
            return
        if code in _CLASSES:
            raise TypeError(f"{cls.__name__} repeats the code {code} of {_CLASSES[code].__name__}.")
        _CLASSES[code] = cls


_CLASSES: dict[str, type[KeywardError]] = {}


def error_classes() -> list[type[KeywardError]]:
    """Return the class of every error code, by status, in the order they are defined."""
    return sorted(_CLASSES.values(), key=lambda cls: cls.status)


class ValidationFailed(KeywardError):
    """Bad input, or a body that is not JSON; `fields` maps a field name to its messages."""

    status = 400
    code = "validation_error"
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, *, fields: dict[str, list[str]] | None = None):
        extra = {"fields": fields} if fields else {}
        super().__init__(message or "The request is not valid.", **extra)

    @classmethod
    def on(cls, field: str, message: str) -> ValidationFailed:
        """Return the error for one field with one message."""
        return cls(message, fields={field: [message]})


class KeyInUrl(KeywardError):
    """A token appeared in the query string."""

    status = 400
    code = "key_in_url"
    default_message = (
        "API keys must be sent in the Authorization header, never in the URL. "
        "Treat this key as exposed and rotate it."
    )


class MissingKey(KeywardError):
    """No bearer credentials."""

    status = 401
    code = "missing_key"
    default_message = "No API key was provided. Send it as 'Authorization: Bearer <key>'."


class InvalidKey(KeywardError):
    """Malformed, bad checksum, unknown, wrong secret, or revoked."""

    status = 401
    code = "invalid_key"
    default_message = "The API key is not valid."


class ExpiredKey(KeywardError):
    """Past its expiry, or its rotation grace period ended."""

    status = 401
    code = "expired_key"
    default_message = "The API key has expired."


class InvalidSignature(KeywardError):
    """A signed request whose signature is missing, malformed, stale or wrong."""

    status = 401
    code = "invalid_signature"
    default_message = "The request's signature is not valid."


class MissingScope(KeywardError):
    """The key lacks a required scope; adds `required_scopes`."""

    status = 403
    code = "missing_scope"

    def __init__(self, required: list[str]) -> None:
        names = ", ".join(required)
        super().__init__(f"This key lacks the scope {names}.", required_scopes=required)


class ScopeNotAllowed(KeywardError):
    """Asked to grant scopes beyond the caller's own; adds `scopes`."""

    status = 403
    code = "scope_not_allowed"

    def __init__(self, scopes: list[str]) -> None:
        names = ", ".join(scopes)
        super().__init__(f"You cannot grant scopes you do not hold: {names}.", scopes=scopes)


class Forbidden(KeywardError):
    """The caller's role or key does not allow this change."""

    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class IpNotAllowed(KeywardError):
    """The client address is outside the key's `allowed_ips`."""

    status = 403
    code = "ip_not_allowed"
    default_message = "This key may not be used from your address."


class OriginNotAllowed(KeywardError):
    """The request's `Origin` is not one the key allows."""

    status = 403
    code = "origin_not_allowed"
    default_message = (
        "This publishable key may not be used from this origin. Add the site to the "
        "key's allowed origins."
    )


class PublishableKeyNotAllowed(KeywardError):
    """A publishable key was sent to an endpoint that needs a secret key."""

    status = 403
    code = "publishable_key_not_allowed"
    default_message = (
        "Publishable keys cannot be used here. Use a secret key from a server instead."
    )


class ResourceNotAllowed(KeywardError):
    """The key is limited to other resources than the one asked for."""

    status = 403
    code = "resource_not_allowed"

    def __init__(self, resource_type: str | None = None, message: str | None = None) -> None:
        extra = {"resource_type": resource_type} if resource_type else {}
        super().__init__(
            message or f"This key is limited to other {resource_type or 'resources'}.", **extra
        )


class QuotaExceeded(KeywardError):
    """The organisation's daily quota is used up (live keys only)."""

    status = 403
    code = "quota_exceeded"
    default_message = "The organisation's daily request quota is used up."


class NotFound(KeywardError):
    """No such object in the caller's organisation, or no such API path."""

    status = 404
    code = "not_found"
    default_message = "Not found."


class MethodNotAllowed(KeywardError):
    """The path exists, the method does not."""

    status = 405
    code = "method_not_allowed"
    default_message = "This method is not allowed here."


class NotAcceptable(KeywardError):
    """The `Accept` header asks for a format the API does not answer in."""

    status = 406
    code = "not_acceptable"
    default_message = "The API answers in JSON only."


class Conflict(KeywardError):
    """The change conflicts with the current state (a member already there, the last owner)."""

    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class KeyRevoked(KeywardError):
    """The change needs a key that is not revoked or expired."""

    status = 409
    code = "key_revoked"
    default_message = "This key is revoked or expired and can no longer be changed."


class PayloadTooLarge(KeywardError):
    """The request body is larger than the API accepts."""

    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class RateLimited(KeywardError):
    """The key's rate limit, or too many invalid keys; with `Retry-After` in seconds."""

    status = 429
    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class InternalError(KeywardError):
    """Something failed on the server; the request id finds it in the logs."""

    status = 500
    code = "internal_error"
    default_message = "Something went wrong on our side. The request id helps us find it."


class Unavailable(KeywardError):
    """The database cannot be reached; with `Retry-After` in seconds."""

    status = 503
    code = "unavailable"
    default_message = "The service is temporarily unavailable. Try again shortly."


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """Return the JSON error body of docs/reference/errors.md."""
    return {
        "error": {
            "code": code,
            "message": message,
            "request_id": current_request_id(),
            **extra,
        }
    }


def _headers_for(status: int, code: str, *, token_presented: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer realm="api", error="invalid_token"' if token_presented else 'Bearer realm="api"'
        )
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
    return headers


def error_response(exc: KeywardError, *, token_presented: bool = False) -> JsonResponse:
    """Render a KeywardError as a plain Django JSON response (outside DRF)."""
    response = JsonResponse(error_body(exc.code, exc.message, **exc.extra), status=exc.status)
    for name, value in _headers_for(exc.status, exc.code, token_presented=token_presented).items():
        response[name] = value
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.retry_after)
    return response


def _fields_from(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    return {"non_field_errors": _flatten(detail)}


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, list):
        out: list[str] = []
        for item in detail:
            out.extend(_flatten(item))
        return out
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _flatten(v)]
    return [str(detail)]


def as_keyward_error(exc: Exception) -> KeywardError | None:
    """Map DRF's and Django's exceptions to a KeywardError, or None if unknown."""
    if isinstance(exc, KeywardError):
        return exc
    if isinstance(getattr(exc, "keyward_error", None), KeywardError):
        return exc.keyward_error
    if isinstance(exc, drf.ValidationError):
        return ValidationFailed(fields=_fields_from(exc.detail))
    if isinstance(exc, drf.ParseError | drf.UnsupportedMediaType):
        return ValidationFailed(str(exc.detail))
    if isinstance(exc, drf.NotAuthenticated):
        return MissingKey()
    if isinstance(exc, drf.AuthenticationFailed):
        return InvalidKey()
    if isinstance(exc, drf.Throttled):
        return RateLimited(retry_after=int(exc.wait or 1))
    if isinstance(exc, drf.PermissionDenied):
        return Forbidden(str(exc.detail))
    if isinstance(exc, drf.NotFound | Http404):
        return NotFound()
    if isinstance(exc, drf.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return NotAcceptable(str(exc.detail))
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(too_large_message())
    if isinstance(exc, DisallowedHost):
        return ValidationFailed("This server does not answer to that Host header.")
    if isinstance(exc, TooManyFieldsSent):
        return ValidationFailed("The request has too many query or form fields.")
    if isinstance(exc, SuspiciousOperation):
        return ValidationFailed("The request is malformed.")
    if isinstance(exc, OperationalError | InterfaceError):
        return Unavailable()
    if isinstance(exc, DatabaseError) and _looks_like_lost_connection(exc):
        return Unavailable()
    return None


def _looks_like_lost_connection(exc: DatabaseError) -> bool:
    text = str(exc).lower()
    return "connection" in text or "server closed" in text or "terminating" in text


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Render every exception raised in an API view as the JSON error shape."""
    error = as_keyward_error(exc)
    if error is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        error = InternalError()
    elif isinstance(error, Unavailable):
        logger.warning("Database unavailable: %s", type(exc).__name__)
    request = context.get("request")
    state = getattr(request, "keyward", None)  # apikeys/request_state.py
    token_presented = bool(state is not None and state.token_presented)
    if state is not None:
        state.error_code = error.code
    headers = _headers_for(error.status, error.code, token_presented=token_presented)
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return Response(
        error_body(error.code, error.message, **error.extra),
        status=error.status,
        headers=headers,
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler400(request: HttpRequest, exception: Exception | None = None):
    """Answer a malformed request under /api/ with JSON; leave pages to Django's template.

    Django sends here what it refuses before any view runs: a Host header outside
    ALLOWED_HOSTS, too many query or form fields, a body over the size limit.
    """
    if _is_api(request):
        return error_response(as_keyward_error(exception) or ValidationFailed())
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None):
    """Answer unknown API paths with JSON; leave pages to Django's template."""
    if _is_api(request):
        return error_response(NotFound("No such API path."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest):
    """Answer a crash with JSON on the API, never with a traceback."""
    if _is_api(request):
        return error_response(InternalError())
    from django.views.defaults import server_error

    return server_error(request)


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Answer any unknown path under /api/ with a JSON 404, whatever DEBUG says."""
    return error_response(NotFound("No such API path."))
