"""What authentication, throttles and middleware share while one request is served.

One `RequestState` per request, on the Django request as `request.keyward`
(DRF's `Request` reads it through to the Django request). Nothing else of
Keyward's is left on the request. Its lifecycle:

1. **Opened.** `KeyResponseHeadersMiddleware` opens it as the request comes in,
   with `closes_at_response` set: from then on authentication may count ahead
   for the view's throttles, since something will give back what nobody claims
   (apikeys/roundtrip.py). Where that middleware is not installed (a project
   that only adds `APIKeyAuthentication` to its own views), the first writer
   opens it on demand, without that flag, and only the usage count, which
   authentication settles itself, is counted ahead.
2. **Authentication** sets `token_presented` once a bearer token is presented
   (well-formed or not), `key_id` once the token names a key that exists (even
   if it then refuses it: the key's activity counts refusals too), keeps in
   `counters` what its shared-cache round trip counted ahead, and adds
   `Deprecation` and `Sunset` to `headers` for a key in its grace period.
   When it refuses the key it settles `counters` at once.
3. **Throttles** claim from `counters` what was counted for them (or count for
   themselves), and add the `RateLimit-*` headers.
4. **The exception handler** (config/errors.py) reads `token_presented` to
   choose the `WWW-Authenticate` challenge of a refusal, and sets `error_code`.
5. **Closed.** After the view, the middleware settles `counters` (counts
   nobody claimed go back: a permission refused the request before its
   throttles ran), copies `headers` onto the response, and counts the key's
   activity (apikeys/activity.py) with the answer's outcome.

A state is never shared between requests, and none outlives its request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ATTRIBUTE = "keyward"


@dataclass
class RequestState:
    """Keyward's state of one request: see the module docstring for who writes what, when."""

    closes_at_response: bool = False
    token_presented: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    counters: Any = None  # apikeys.roundtrip.RequestCounters, once a round trip counted ahead
    key_id: str | None = None
    error_code: str | None = None

    def add_headers(self, headers: dict[str, str]) -> None:
        """Add headers for the response (the middleware copies them on)."""
        self.headers.update(headers)

    def settle(self) -> None:
        """Give back what was counted ahead and nobody claimed."""
        if self.counters is not None:
            self.counters.settle()


def _django_request(request: Any) -> Any:
    return getattr(request, "_request", request)


def open_state(request: Any) -> RequestState:
    """Open the state of a request entering KeyResponseHeadersMiddleware."""
    state = RequestState(closes_at_response=True)
    setattr(_django_request(request), ATTRIBUTE, state)
    return state


def request_state(request: Any) -> RequestState:
    """Return the request's state, opening one (not closed by the middleware) if none is."""
    target = _django_request(request)
    state = target.__dict__.get(ATTRIBUTE)
    if state is None:
        state = RequestState()
        setattr(target, ATTRIBUTE, state)
    return state


def existing_state(request: Any) -> RequestState | None:
    """Return the request's state if something opened one, else None."""
    return _django_request(request).__dict__.get(ATTRIBUTE)
