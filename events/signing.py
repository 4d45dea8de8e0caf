"""Standard Webhooks signing: `whsec_` secrets and the `webhook-*` headers.

Each delivery carries `webhook-id` (the event id, the same on every retry),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: a
space-separated list of `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one
per secret in force: the endpoint's own, and for 24 hours after a rotation the
previous one too (https://www.standardwebhooks.com/, "Signature scheme").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (the public prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> bytes:
    """Return 32 random bytes: what signing needs, and all that is stored (sealed)."""
    return secrets.token_bytes(SECRET_BYTES)


def encode_secret(raw: bytes) -> str:
    """Return the secret as shown once to its owner: `whsec_` + base64."""
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` under `secret`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secrets_in_force: list[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the three `webhook-*` headers for one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, message_id, timestamp, body) for secret in secrets_in_force
        ),
    }
