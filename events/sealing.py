"""Webhook signing secrets, encrypted at rest with a key derived from SECRET_KEY.

The key is HKDF-SHA256 of `SECRET_KEY` (salt and info name this use, so it is
independent of every other use Django makes of SECRET_KEY); the cipher is AES-256-GCM
with a random 96-bit nonce and the endpoint's id as associated data, so that a sealed
secret copied onto another endpoint does not open. A sealed value reads
`v1.<key id>.<base64 nonce + ciphertext>`, the key id being the first 8 hex digits of
the derived key's SHA-256 (it says which key opens it, and nothing about the key).

Rotation follows Django's: move the old SECRET_KEY into SECRET_KEY_FALLBACKS and set
a new one. Secrets sealed under a fallback still open; the worker re-seals each with
the current key the next time it signs with it, and the hourly job re-seals the rest
(events/jobs.py, whose `JobRun` result counts them). Once a run re-seals none, the
fallback can go.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

VERSION = "v1"
_SALT = b"keyward webhook secrets"
_INFO = b"keyward: AES-256-GCM key for webhook signing secrets, v1"


class SealError(Exception):
    """A sealed secret that no configured key opens (SECRET_KEY changed without a fallback)."""


@lru_cache(maxsize=16)
def _derive(secret_key: str) -> tuple[str, bytes]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        secret_key.encode()
    )
    return hashlib.sha256(key).hexdigest()[:8], key


def _keys() -> list[tuple[str, bytes]]:
    """Return (key id, key) for SECRET_KEY, then for each of SECRET_KEY_FALLBACKS."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [_derive(secret) for secret in secrets if secret]


def seal(plaintext: bytes, *, context: str) -> str:
    """Encrypt `plaintext` under the current key, bound to `context` (the endpoint id)."""
    key_id, key = _keys()[0]
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, context.encode())
    return f"{VERSION}.{key_id}.{base64.b64encode(nonce + sealed).decode()}"


def unseal(sealed: str, *, context: str) -> tuple[bytes, bool]:
    """Return the plaintext, and whether it was sealed under the current key."""
    try:
        version, key_id, data = sealed.split(".", 2)
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise SealError("This is not a sealed secret.") from None
    if version != VERSION:
        raise SealError(f"Unknown sealing version {version!r}.")
    for position, (candidate_id, key) in enumerate(_keys()):
        if candidate_id != key_id:
            continue
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()), position == 0
        except Exception:
            break
    raise SealError(
        "No configured key opens this secret: was SECRET_KEY changed without keeping the old "
        "one in SECRET_KEY_FALLBACKS? Rotate the endpoint's secret."
    )


def is_current(sealed: str) -> bool:
    """Return whether `sealed` was sealed under the current SECRET_KEY."""
    parts = sealed.split(".", 2)
    return len(parts) == 3 and parts[1] == _keys()[0][0]
