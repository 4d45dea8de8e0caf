"""The OpenAPI document: valid, complete, public, and served with Swagger UI without a CDN."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import path
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from openapi_spec_validator import validate
from rest_framework.response import Response
from rest_framework.views import APIView

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
SPECTACULAR_VIEWS = (SpectacularAPIView, SpectacularSwaggerView)


@pytest.fixture
def schema(client, db):
    response = client.get("/api/v1/schema")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for route, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield route, method, operation


def test_schema_is_json_and_public(client, db):
    response = client.get("/api/v1/schema", HTTP_AUTHORIZATION="Bearer not-a-key")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/json", "application/json"),
        ("application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
        ("application/json, text/plain, */*", "application/json"),  # what axios sends
        ("text/html", "application/vnd.oai.openapi+json"),  # unsatisfiable: the default
    ],
)
def test_schema_is_served_as_json_for_json_accept_headers(client, db, accept, content_type):
    response = client.get("/api/v1/schema", HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content[:200]
    assert response["Content-Type"].startswith(content_type)
    assert json.loads(response.content)["openapi"].startswith("3.")


@pytest.mark.parametrize("accept", ["application/yaml", "application/vnd.oai.openapi"])
def test_schema_is_served_as_yaml_when_asked(client, db, accept):
    response = client.get("/api/v1/schema", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(accept)
    assert yaml.safe_load(response.content)["openapi"].startswith("3.")


def test_schema_is_valid_openapi_3(schema):
    validate(schema)  # raises on any violation of the OpenAPI 3 specification


def test_spectacular_validates_without_a_warning(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.")


def test_every_key_endpoint_is_described(schema):
    documented = {(route, method) for route, method, _ in operations(schema)}
    assert documented >= {
        ("/api/v1/whoami", "get"),
        ("/api/v1/keys", "get"),
        ("/api/v1/keys", "post"),
        ("/api/v1/keys/{key_id}", "get"),
        ("/api/v1/keys/{key_id}", "patch"),
        ("/api/v1/keys/{key_id}/rotate", "post"),
        ("/api/v1/keys/{key_id}/revoke", "post"),
    }


# Endpoints anyone may call without a key: reports of leaked keys (docs/leaks.md).
PUBLIC_OPERATIONS = {("/api/v1/credentials/revoke", "post"), ("/api/v1/leaks/github", "post")}


def keyed_operations(schema):
    return [op for op in operations(schema) if (op[0], op[1]) not in PUBLIC_OPERATIONS]


def test_public_operations_ask_for_no_key(schema):
    for route, method in PUBLIC_OPERATIONS:
        operation = schema["paths"][route][method]
        assert "x-required-scopes" not in operation
        assert operation.get("security", []) in ([], [{}])


def test_every_api_route_of_the_project_is_described(schema):
    """Whatever view anyone routes under /api/v1/ appears, with scopes, or the test says which."""
    documented = {(route, method) for route, method, _ in operations(schema)}
    routed = {
        (path, method.lower())
        for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints()
        if path.startswith("/api/v1/") and not issubclass(callback.cls, SPECTACULAR_VIEWS)
    }
    assert routed, "the enumerator found no API route"
    assert routed <= documented, routed - documented
    for route, method, operation in keyed_operations(schema):
        assert "x-required-scopes" in operation, (route, method)


@pytest.mark.parametrize(
    ("route", "method", "scopes"),
    [
        ("/api/v1/whoami", "get", []),
        ("/api/v1/keys", "get", ["keys:read"]),
        ("/api/v1/keys", "post", ["keys:write"]),
        ("/api/v1/keys/{key_id}", "get", ["keys:read"]),
        ("/api/v1/keys/{key_id}", "patch", ["keys:write"]),
        ("/api/v1/keys/{key_id}/rotate", "post", ["keys:write"]),
        ("/api/v1/keys/{key_id}/revoke", "post", ["keys:write"]),
    ],
)
def test_each_operation_names_its_scopes(schema, route, method, scopes):
    operation = schema["paths"][route][method]
    assert operation["x-required-scopes"] == scopes
    assert "**Scopes:**" in operation["description"]
    for scope in scopes:
        assert f"`{scope}`" in operation["description"]


def test_every_operation_uses_the_bearer_scheme(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "kw_<env>_<key_id>_<secret><checksum>",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for route, method, operation in keyed_operations(schema):
        assert operation["security"] == [{"bearerAuth": []}], (route, method)


def test_every_operation_documents_its_errors_with_the_error_shape(schema):
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for route, method, operation in operations(schema):
        keyed = (route, method) not in PUBLIC_OPERATIONS
        expected = {"400", "413", "429", "503"} | ({"401", "403"} if keyed else set())
        expected |= {"404"} if "{" in route else set()
        errors = {s for s in operation["responses"] if s.startswith(("4", "5"))}
        assert expected <= errors, (route, method)
        for status in errors:
            response = operation["responses"][status]
            assert response["content"]["application/json"]["schema"] == error_ref
            assert response["headers"]["X-Request-Id"]["required"] is True
        if "401" in operation["responses"]:
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        assert "Retry-After" in operation["responses"]["503"]["headers"]


def test_changes_to_a_key_document_409(schema):
    assert "409" in schema["paths"]["/api/v1/keys/{key_id}"]["patch"]["responses"]
    assert "409" in schema["paths"]["/api/v1/keys/{key_id}/rotate"]["post"]["responses"]


def test_error_shape_component_matches_the_design(schema):
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "request_id"}
    assert {"fields", "required_scopes", "scopes"} <= set(error["properties"])


def test_request_bodies_refuse_unknown_fields(schema):
    components = schema["components"]["schemas"]
    for name in ("KeyCreateInputRequest", "PatchedKeyUpdateInputRequest", "KeyRotateInputRequest"):
        assert components[name]["additionalProperties"] is False


def test_the_key_object_never_describes_a_token_or_hash(schema):
    key = schema["components"]["schemas"]["KeyOutput"]["properties"]
    assert "token" not in key
    assert not any("hash" in name for name in key)


class UsageApiForTest(APIView):
    """A view as another issue will add one: default authentication and HasScope."""

    required_scopes = ["usage:read"]

    def get(self, request):
        return Response({})


def test_a_view_added_later_is_described_with_scopes_and_errors():
    generator = SchemaGenerator(patterns=[path("api/v1/usage", UsageApiForTest.as_view())])
    operation = generator.get_schema(request=None, public=True)["paths"]["/api/v1/usage"]["get"]
    assert operation["x-required-scopes"] == ["usage:read"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"400", "401", "403", "413", "429", "503"} <= set(operation["responses"])


def test_swagger_ui_is_served_without_cdn_and_without_inline_script(client, db):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn." not in html and "https://" not in html
    assert "<style" not in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attrs for attrs in scripts)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html


def test_swagger_ui_script_is_a_file_pointing_at_the_schema(client, db):
    response = client.get("/api/v1/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "/api/v1/schema" in response.content.decode()


@pytest.mark.parametrize(
    "name", ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"]
)
def test_swagger_ui_files_are_installed_locally(name):
    assert finders.find(f"drf_spectacular_sidecar/swagger-ui-dist/{name}")
