"""Response headers that authentication and throttling decide for a key."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apikeys.activity import ALLOWED, key_activity
from apikeys.models import APIKey
from apikeys.request_state import open_state


class KeyResponseHeadersMiddleware:
    """Copy `Deprecation`, `Sunset` and `RateLimit-*` onto the response of a key's request.

    It opens and closes the request's state (apikeys/request_state.py), and counts the
    activity of the key the request presented (apikeys/activity.py).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        state = open_state(request)
        response = self.get_response(request)
        headers = state.headers
        key = getattr(request, "auth", None)
        if isinstance(key, APIKey) and not state.rate_checked:
            # Refused before its throttle ran (a missing scope): show the budget, uncounted.
            from apikeys.throttling import KeyRateThrottle

            headers = {**KeyRateThrottle().current_headers(key), **headers}
        for name, value in headers.items():
            response[name] = value
        if state.key_id is not None and key_activity.enabled:
            match = request.resolver_match
            key_activity.record(
                state.key_id,
                getattr(request, "client_ip", None),
                match.route if match is not None else None,
                ALLOWED if response.status_code < 400 else state.error_code or "error",
            )
        return response
