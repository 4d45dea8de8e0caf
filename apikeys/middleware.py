"""Response headers that authentication and throttling decide for a key."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apikeys.models import APIKey
from apikeys.roundtrip import settle


class KeyResponseHeadersMiddleware:
    """Copy `Deprecation`, `Sunset` and `RateLimit-*` onto the response of a key's request.

    It also settles the request's shared-cache round trip (apikeys/roundtrip.py).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # What authentication counted ahead for throttles that never ran goes back first.
        settle(request)
        headers = getattr(request, "keyward_headers", None) or {}
        key = getattr(request, "auth", None)
        if isinstance(key, APIKey) and "RateLimit-Limit" not in headers:
            # Refused before its throttle ran (a missing scope): show the budget, uncounted.
            from apikeys.throttling import KeyRateThrottle

            headers = {**KeyRateThrottle().current_headers(key), **headers}
        for name, value in headers.items():
            response[name] = value
        return response
