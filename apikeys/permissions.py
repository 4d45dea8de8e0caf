"""Scope checks for views authenticated with Keyward keys."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from apikeys.models import APIKey
from config.errors import MissingKey, MissingScope


class HasScope(BasePermission):
    """Allow a request whose key holds every scope the view requires.

    The view names them in `required_scopes`, or per method in
    `required_scopes_by_method` (`{"GET": ["keys:read"], "POST": ["keys:write"]}`).
    A request without a Keyward key is refused with `missing_key` whatever
    permission classes come before or after this one.
    """

    def required_scopes(self, request, view) -> list[str]:
        by_method = getattr(view, "required_scopes_by_method", None)
        if by_method is not None and request.method in by_method:
            return list(by_method[request.method])
        if by_method is not None and request.method == "HEAD" and "GET" in by_method:
            return list(by_method["GET"])
        return list(getattr(view, "required_scopes", []))

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, APIKey):
            raise MissingKey()
        missing = [s for s in self.required_scopes(request, view) if s not in key.effective_scopes]
        if missing:
            raise MissingScope(missing)
        return True
