"""Scope and resource checks for views authenticated with Keyward keys."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from apikeys.models import APIKey
from config.errors import MissingKey, MissingScope, ResourceNotAllowed

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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
        granted = key.effective_scopes
        required = self.required_scopes(request, view)
        for scope in required:
            if scope not in granted:
                raise MissingScope([s for s in required if s not in granted])
        return True


class HasResourceAccess(BasePermission):
    """Allow a request whose key may reach the resource the URL names.

    The resource type is the view's `resource_type` (`"bots"`); its id is the URL
    keyword `resource_url_kwarg`, else DRF's `lookup_url_kwarg` or `lookup_field`,
    else `pk`. A subclass may set both as its own class attributes instead.
    Without an id in the URL (a listing), a limited key may read, and the view
    narrows what it lists with `apikeys.resources.filter_allowed`; creating a new
    resource there needs a key that is not limited on that type. A refused
    request gets `403 resource_not_allowed`; one without a Keyward key, `missing_key`.
    """

    resource_type: str | None = None
    resource_url_kwarg: str | None = None

    def resource_type_for(self, view) -> str:
        resource_type = self.resource_type or getattr(view, "resource_type", None)
        if not resource_type:
            raise TypeError(f"{type(view).__name__} uses HasResourceAccess without resource_type.")
        return resource_type

    def resource_id_for(self, view) -> str | None:
        names = (
            self.resource_url_kwarg,
            getattr(view, "resource_url_kwarg", None),
            getattr(view, "lookup_url_kwarg", None),
            getattr(view, "lookup_field", None),
            "pk",
        )
        kwargs = getattr(view, "kwargs", None) or {}
        for name in names:
            if name and name in kwargs:
                return str(kwargs[name])
        return None

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, APIKey):
            raise MissingKey()
        resource_type = self.resource_type_for(view)
        resource_id = self.resource_id_for(view)
        if resource_id is None:
            if request.method not in SAFE_METHODS and key.resources is not None:
                raise ResourceNotAllowed(
                    resource_type,
                    f"This key is limited to some {resource_type}; it cannot create new ones.",
                )
            return True
        if not key.allows(resource_type, resource_id):
            raise ResourceNotAllowed(resource_type)
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        key = request.auth
        resource_type = self.resource_type_for(view)
        if isinstance(key, APIKey) and not key.allows(resource_type, obj.pk):
            raise ResourceNotAllowed(resource_type)
        return True
