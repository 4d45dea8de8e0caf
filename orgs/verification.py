"""Sign-up confirmation links: signed, dated, single-use; they carry the organisation's name.

The link proves that its reader holds the address. It names the person and the
organisation to create, and a digest of the account's state (address, password
hash, verification time): verifying the address, or a later sign-up that
replaces the password, changes that state, so an older link stops working.
Nothing of it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from orgs.models import User

VALID_FOR = timedelta(days=3)
MAX_TOKEN_LENGTH = 4096  # an organisation name of 100 emoji, escaped, still fits
_SALT = "keyward.orgs.email-verification"


@dataclass(frozen=True)
class SignupClaim:
    """What a valid link says: who signed up, and the organisation they asked for."""

    user: User
    organization_name: str


def _state(user: User) -> str:
    value = f"{user.pk}|{user.email}|{user.password}|{user.email_verified_at}"
    return salted_hmac(_SALT, value, algorithm="sha256").hexdigest()[:32]


def make_token(user: User, organization_name: str) -> str:
    """Return a signed, dated token for the confirmation link of `user`'s sign-up."""
    payload = {"u": user.pk, "o": organization_name, "s": _state(user)}
    return signing.dumps(payload, salt=_SALT, compress=True)


def read_token(token: str) -> SignupClaim | None:
    """Return the claim of a valid token; None if forged, too old, used or replaced."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload = signing.loads(token, salt=_SALT, max_age=VALID_FOR)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    user = User.objects.filter(pk=payload["u"]).first()
    if user is None or user.is_email_verified or not user.is_active:
        return None
    if not constant_time_compare(_state(user), str(payload.get("s", ""))):
        return None
    return SignupClaim(user=user, organization_name=str(payload.get("o", "")))
