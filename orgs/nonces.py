"""One-time form nonces: a re-submitted form (reload, back) does its work no second time."""

from __future__ import annotations

import secrets

from django.core.cache import cache
from django.http import HttpRequest

SESSION_KEY = "keyward_form_nonces"
KEEP = 20  # the most recent forms a person may have open at once
USED_FOR = 24 * 3600


def nonce_issue(request: HttpRequest) -> str:
    """Return a fresh nonce for one form, remembered in the session."""
    nonce = secrets.token_urlsafe(18)
    issued = [n for n in request.session.get(SESSION_KEY, []) if isinstance(n, str)]
    request.session[SESSION_KEY] = [*issued, nonce][-KEEP:]
    return nonce


def nonce_consume(request: HttpRequest, nonce: str | None) -> bool:
    """Use up a nonce; return False when it was never issued here or is used already.

    The session forgets it at once; the cache's atomic `add` also stops two
    copies of one request racing through different processes.
    """
    issued = request.session.get(SESSION_KEY, [])
    if not nonce or nonce not in issued:
        return False
    request.session[SESSION_KEY] = [n for n in issued if n != nonce]
    request.session.save()
    return cache.add(f"form-nonce-used:{nonce}", 1, USED_FOR)
