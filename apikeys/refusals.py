"""Refusals of known keys (a wrong secret, revoked, expired), told to whoever listens.

Authentication calls `key_refused` on its refusal path only. It costs no query, no
write and no round trip: the key id comes from the token the request presented, and
the key's organisation from this process's verified-key cache, which authentication
filled when it loaded the key (an unknown key id was never loaded, so it is not
counted: only keys that exist can be attacked this way). Listeners register from an
AppConfig.ready(); the invalid-key spike detection tallies in memory and writes in
batches (docs/README-events.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from apikeys import tokens
from apikeys.cache import verified_keys
from config.errors import ExpiredKey, InvalidKey, KeywardError

logger = logging.getLogger("keyward.refusals")

# listener(organization_id, key_id, error_code)
_listeners: list[Callable[[int, str, str], None]] = []


def register(listener: Callable[[int, str, str], None]) -> None:
    """Call `listener(organization_id, key_id, error_code)` for each refusal of a known key."""
    if listener not in _listeners:
        _listeners.append(listener)


def key_refused(request: Any, error: KeywardError) -> None:
    """Tell the listeners that a presented key was refused, if it is a key that exists."""
    if not _listeners or not isinstance(error, InvalidKey | ExpiredKey):
        return
    parts = (request.META.get("HTTP_AUTHORIZATION") or "").split()
    if len(parts) != 2:
        return
    try:
        key_id = tokens.parse(parts[1]).key_id
    except tokens.MalformedToken:
        return
    organization_id = verified_keys.organization_of(key_id)
    if organization_id is None:
        return
    for listener in _listeners:
        try:
            listener(organization_id, key_id, error.code)
        except Exception:  # counting must never change what the request is answered
            logger.exception("A key refusal listener failed.")
