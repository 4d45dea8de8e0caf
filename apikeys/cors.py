"""CORS for the views that accept publishable keys, and for no other view.

A browser asks first (a preflight `OPTIONS` with `Access-Control-Request-Method`)
whenever a page on another origin sends `Authorization`. A preflight carries no
key, so it is answered for an origin that some usable publishable key lists; the
request that follows is checked against its own key's `allowed_origins`
(apikeys/kinds.py), and only a match gets `Access-Control-Allow-Origin`, always
the one origin that matched, never `*`. Credentials (cookies) are never allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from apikeys.kinds import accepts_publishable_keys
from apikeys.origins import request_origin
from apikeys.selectors import publishable_origin_listed
from config.errors import OriginNotAllowed, error_response

ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = (
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, "
    "X-Request-Id, Deprecation, Sunset"
)
MAX_AGE = 600


class PublishableKeyCorsMiddleware:
    """Answer preflights for, and add CORS headers to, views with `allow_publishable_keys`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "keyward_publishable_view", False):
            patch_vary_headers(response, ("Origin",))
            if getattr(request, "keyward_cors_origin", None) and "HTTP_ORIGIN" in request.META:
                response["Access-Control-Allow-Origin"] = request.META["HTTP_ORIGIN"]
                response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        if not accepts_publishable_keys(view_class):
            return None
        request.keyward_publishable_view = True
        if request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META:
            return self.preflight(request, view_class)
        return None

    def preflight(self, request: HttpRequest, view_class: Any) -> HttpResponse:
        """Answer a CORS preflight: 204 for a listed origin, else 403 origin_not_allowed."""
        origin = request_origin({"HTTP_ORIGIN": request.META.get("HTTP_ORIGIN", "null")})
        if origin is None or not publishable_origin_listed(origin):
            return error_response(OriginNotAllowed())
        methods = [m for m in view_class().allowed_methods if m != "OPTIONS"]
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Origin"] = request.META["HTTP_ORIGIN"]
        response["Access-Control-Allow-Methods"] = ", ".join(methods)
        response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response["Access-Control-Max-Age"] = str(MAX_AGE)
        return response
