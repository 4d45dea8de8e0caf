"""Who did something, and what it was done to, as the audit log records them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """The user, key or system process behind an event; the label outlives the actor."""

    type: str
    id: str
    label: str

    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        """Return the actor for management commands and background work."""
        return cls(cls.SYSTEM, "", label)

    @classmethod
    def of(cls, obj: Any) -> Actor:
        """Return the actor for a user, an API key, an Actor, or None (the system)."""
        if obj is None:
            return cls.system()
        if isinstance(obj, Actor):
            return obj
        if hasattr(obj, "audit_target"):
            target = obj.audit_target
            return cls(target.type, target.id, target.label)
        raise TypeError(f"Cannot record {type(obj).__name__} as an actor.")


@dataclass(frozen=True)
class Target:
    """The object an event changed."""

    type: str
    id: str
    label: str
