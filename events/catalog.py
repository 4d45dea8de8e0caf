"""The events Keyward tells the world about (docs/README-events.md), with what each means.

An audit action whose name is listed here becomes a webhook event of the same name,
written in the same transaction as the change (events/outbox.py). The others are
written by the periodic jobs (expiry, spikes) or by services (the test event).
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "api_key.created": "A key was created (also the new key of a rotation).",
    "api_key.updated": "A key's name, scopes, addresses, rate limit or expiry changed.",
    "api_key.rotated": "A key was replaced; it works until its grace period ends.",
    "api_key.revoked": "A key was revoked.",
    "api_key.expiring": "A key expires in 7 days or 1 day, or its rotation grace ends in 1 hour.",
    "api_key.expired": "A key reached its expiry and no longer works.",
    "api_key.revoked_key_used": "A revoked key was presented with its correct secret.",
    "api_key.leaked": "A key was found in public.",
    "security.invalid_key_spike": (
        "The organisation's keys were presented with a wrong secret, or revoked or expired, "
        "more than 20 times within 10 minutes."
    ),
    "member.added": "A person joined the organisation.",
    "member.removed": "A person was removed from the organisation.",
    "member.role_changed": "A person's role changed.",
    "webhook.test": "A test event, sent on request to one endpoint.",
}

# For the OpenAPI document: one enum of event types, named once.
EVENT_TYPE_CHOICES = [(name, name) for name in EVENT_TYPES]

# Audit actions that are webhook events, delivered as recorded.
AUDITED_EVENT_TYPES = frozenset(
    {
        "api_key.created",
        "api_key.updated",
        "api_key.rotated",
        "api_key.revoked",
        "api_key.revoked_key_used",
        "api_key.leaked",
        "member.added",
        "member.removed",
        "member.role_changed",
    }
)


def ordered(names: list[str]) -> list[str]:
    """Return event type names in catalogue order, without repeats."""
    wanted = set(names)
    return [name for name in EVENT_TYPES if name in wanted]
