"""Invitation tokens: signed, dated, single-use; only their hash is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.core import signing

VALID_FOR = timedelta(days=7)
_SALT = "keyward.orgs.invitation"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT)


def make_token() -> str:
    """Return a new signed, dated token for an invitation link."""
    return _signer().sign(secrets.token_urlsafe(24))


def hash_token(token: str) -> str:
    """Return the SHA-256 of a token: all the database holds of it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def signature_is_valid(token: str) -> bool:
    """Return whether the token was signed here and is younger than seven days."""
    if not isinstance(token, str) or len(token) > 200:
        return False
    try:
        _signer().unsign(token, max_age=VALID_FOR)
    except signing.BadSignature:
        return False
    return True
