"""The OpenAPI 3 description of the API: scopes, the bearer scheme and the error shape.

`KeywardAutoSchema` is the project's DEFAULT_SCHEMA_CLASS, so any DRF view routed
under /api/v1/ is described with no extra work: its scopes come from `HasScope`
(`required_scopes` or `required_scopes_by_method`) into the description and the
`x-required-scopes` extension, and the errors it can answer (400, 401, 403, 404,
413, 429, 503) are added with the `ErrorResponse` body. A view documents its own
success body, query parameters and any extra error (409) with `@extend_schema`.

This module must not import anything that uses `@extend_schema` at import time:
the decorator loads DEFAULT_SCHEMA_CLASS, which lives here.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from apikeys.authentication import APIKeyAuthentication
from apikeys.permissions import HasScope
from config.errors import error_classes

# Every code the API can answer, from the one class per code in config/errors.py.
ERROR_CODES = ", ".join(error.code for error in error_classes())


class ErrorDetailSerializer(serializers.Serializer):
    """What went wrong: a stable code, a sentence for people, and the request id."""

    code = serializers.RegexField(
        r"^[a-z][a-z_]*$", help_text=f"A stable machine-readable code: {ERROR_CODES}."
    )
    message = serializers.CharField(help_text="A sentence for people; it may change.")
    request_id = serializers.CharField(help_text="The X-Request-Id of this request.")
    required_scopes = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="With missing_scope."
    )
    scopes = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="With scope_not_allowed."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # `fields` cannot be a class attribute of a serializer: it names the field mapping.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="With validation_error: the messages for each field at fault.",
        )
        return fields


class ErrorResponseSerializer(serializers.Serializer):
    """Every error body the API answers (docs/reference/errors.md); never HTML or a traceback."""

    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: (
        "`validation_error` (bad input: a body that is not JSON or nests deeper than 32 "
        "levels, a control character in the query or the body) or `key_in_url`."
    ),
    401: "`missing_key`, `invalid_key` or `expired_key`.",
    403: (
        "`missing_scope`, `scope_not_allowed`, `forbidden` (someone else's personal key "
        "cannot be rotated), `ip_not_allowed`, `quota_exceeded`, `origin_not_allowed`, "
        "`publishable_key_not_allowed` or `resource_not_allowed`."
    ),
    404: "`not_found`: no such object in the caller's organisation.",
    409: "`key_revoked`: the key is revoked, expired or already rotated.",
    413: "`payload_too_large`: the request body is larger than 1 MiB.",
    429: "`rate_limited`: wait `Retry-After` seconds.",
    503: "`unavailable`: the database cannot be reached; retry after `Retry-After` seconds.",
}


def error_response(status: int, description: str | None = None) -> OpenApiResponse:
    """Return the documented error response for `status`, for use in `@extend_schema`."""
    return OpenApiResponse(
        ErrorResponseSerializer, description=description or ERROR_DESCRIPTIONS[status]
    )


def _header(description: str, type_: str = "string") -> dict[str, Any]:
    return {"schema": {"type": type_}, "required": True, "description": description}


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describe APIKeyAuthentication as the HTTP bearer scheme."""

    target_class = "apikeys.authentication.APIKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "kw_<env>_<key_id>_<secret><checksum>",
            "description": (
                "A Keyward API key in `Authorization: Bearer <key>`. A key in the query "
                "string is refused with `400 key_in_url`."
            ),
        }


class KeywardAutoSchema(AutoSchema):
    """AutoSchema that adds each operation's scopes and every error it can answer."""

    def required_scopes(self) -> list[str] | None:
        """Return the scopes HasScope requires of this operation, or None without HasScope."""
        for permission in self.view.get_permissions():
            if isinstance(permission, HasScope):
                return permission.required_scopes(SimpleNamespace(method=self.method), self.view)
        return None

    def uses_keys(self) -> bool:
        return any(isinstance(a, APIKeyAuthentication) for a in self.view.get_authenticators())

    def get_description(self) -> str:
        # The method's docstring, else the view's own: never one inherited from a base view.
        method = getattr(self.view, self.method.lower(), None)
        description = (getattr(method, "__doc__", None) or "").strip() or (
            type(self.view).__dict__.get("__doc__") or ""
        ).strip()
        scopes = self.required_scopes()
        if scopes is None:
            return description
        needs = ", ".join(f"`{s}`" for s in scopes) if scopes else "any valid key"
        return f"{description}\n\n**Scopes:** {needs}.".strip()

    def get_extensions(self) -> dict[str, Any]:
        extensions = dict(super().get_extensions())
        scopes = self.required_scopes()
        if scopes is not None:
            extensions["x-required-scopes"] = scopes
        return extensions

    def error_statuses(self) -> list[int]:
        """Return the error statuses any operation of this kind can answer."""
        statuses = [400, 413, 429, 503]
        if self.uses_keys():
            statuses.append(401)
        if self.required_scopes() is not None:
            statuses.append(403)
        if "{" in self.path:
            statuses.append(404)
        return sorted(statuses)

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status in self.error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    error_response(status), str(status), direction=direction
                )
        for status, response in responses.items():
            headers = response.setdefault("headers", {})
            headers["X-Request-Id"] = _header("The request's id, echoed or generated.")
            if status == "401":
                headers["WWW-Authenticate"] = _header('`Bearer realm="api"`.')
            if status in ("429", "503"):
                headers["Retry-After"] = _header("Seconds to wait.", "integer")
        return responses

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if not type(serializer).__dict__.get("__doc__"):
            schema.pop("description", None)  # not a base class's docstring
        if direction == "request" and getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        return schema
