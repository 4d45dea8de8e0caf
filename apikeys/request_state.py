"""What authentication, throttles and middleware share while one request is served.

One `RequestState` per request, on the Django request as `request.keyward`
(DRF's `Request` reads it through to the Django request). Nothing else of
Keyward's is left on the request. Its lifecycle:

1. **Opened.** `KeyResponseHeadersMiddleware` opens it as the request comes in.
   Where that middleware is not installed (a project that only adds
   `APIKeyAuthentication` to its own views), the first writer opens it on
   demand, and the headers it gathers are not copied onto the response.
2. **Authentication** sets `token_presented` once a bearer token is presented
   (well-formed or not), `key_id` once the token names a key that exists (even
   if it then refuses it: the key's activity counts refusals too), and adds
   `Deprecation` and `Sunset` to `headers` for a key in its grace period.
3. **Throttles** add the `RateLimit-*` headers of a limited key, and the rate
   throttle notes that it ran (`rate_checked`), limit or not.
4. **The exception handler** (config/errors.py) reads `token_presented` to
   choose the `WWW-Authenticate` challenge of a refusal, and sets `error_code`.
5. **Closed.** After the view, the middleware copies `headers` onto the
   response (with a limited key's budget, uncounted, when a refusal came before
   the rate throttle ran), and counts the key's activity (apikeys/activity.py)
   with the answer's outcome.

A state is never shared between requests, and none outlives its request.
Counting does not live here: usage, quotas and failed-key tallies are gathered
per process and sent in the background (apikeys/usage.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ATTRIBUTE = "keyward"


@dataclass
class RequestState:
    """Keyward's state of one request: see the module docstring for who writes what, when."""

    token_presented: bool = False
    rate_checked: bool = False  # the rate-limit throttle ran (its headers, if any, are in)
    headers: dict[str, str] = field(default_factory=dict)
    key_id: str | None = None
    error_code: str | None = None

    def add_headers(self, headers: dict[str, str]) -> None:
        """Add headers for the response (the middleware copies them on)."""
        self.headers.update(headers)


def _django_request(request: Any) -> Any:
    return getattr(request, "_request", request)


def open_state(request: Any) -> RequestState:
    """Open the state of a request entering KeyResponseHeadersMiddleware."""
    state = RequestState()
    setattr(_django_request(request), ATTRIBUTE, state)
    return state


def request_state(request: Any) -> RequestState:
    """Return the request's state, opening one if nothing has."""
    target = _django_request(request)
    state = target.__dict__.get(ATTRIBUTE)
    if state is None:
        state = RequestState()
        setattr(target, ATTRIBUTE, state)
    return state


def existing_state(request: Any) -> RequestState | None:
    """Return the request's state if something opened one, else None."""
    return _django_request(request).__dict__.get(ATTRIBUTE)
