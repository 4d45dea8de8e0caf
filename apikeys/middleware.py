"""Response headers that authentication and throttling decide for a key."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class KeyResponseHeadersMiddleware:
    """Copy `Deprecation`, `Sunset` and `RateLimit-*` onto the response of a key's request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for name, value in (getattr(request, "keyward_headers", None) or {}).items():
            response[name] = value
        return response
