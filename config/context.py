"""What the current request tells the audit log: its id, address, agent and trace."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    trace_id: str = ""


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "keyward_request_context", default=None
)


def current_context() -> RequestContext:
    """Return the context of the request being served, or an empty one outside a request."""
    return _current.get() or RequestContext()


def current_request_id() -> str:
    """Return the id of the request being served, or an empty string."""
    context = _current.get()
    return context.request_id if context else ""


def set_context(context: RequestContext | None) -> contextvars.Token:
    """Make `context` current; return a token for `reset_context`."""
    return _current.set(context)


def reset_context(token: contextvars.Token) -> None:
    """Restore the context that was current before `set_context`."""
    _current.reset(token)
