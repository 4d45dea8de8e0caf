from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import override_settings
from django.urls import path
from rest_framework.views import APIView

from config.middleware import request_id_from, trace_id_from


class CrashingApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise ZeroDivisionError("secret internals that must not leak")


urlpatterns = [path("api/v1/crash", CrashingApi.as_view())]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123_DEF.4", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ("semi;colon", False),
        ("é", False),
        ("", False),
    ],
)
def test_request_id_is_kept_only_when_well_formed(client, db, incoming, kept):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    echoed = response["X-Request-Id"]
    assert (echoed == incoming) is kept
    assert 1 <= len(echoed) <= 64


def test_generated_request_ids_are_unique():
    assert len({request_id_from(None) for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""),
        ("garbage", ""),
        (None, ""),
    ],
)
def test_trace_id_comes_from_a_valid_traceparent(header, trace_id):
    assert trace_id_from(header) == trace_id


def test_unknown_api_path_is_a_json_404(client, db):
    response = client.get("/api/v1/no/such/thing", HTTP_X_REQUEST_ID="req-1")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "No such API path.", "request_id": "req-1"}
    }


def test_wrong_method_is_a_json_405(client, db, org, make_key):
    key, token = make_key(org)
    response = client.delete("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@override_settings(ROOT_URLCONF=__name__)
def test_crash_is_a_json_500_without_traceback(client, db):
    client.raise_request_exception = False
    response = client.get("/api/v1/crash", HTTP_X_REQUEST_ID="crash-1")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["request_id"] == "crash-1"
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_when_the_database_does(client, db):
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_is_down(client, db):
    with mock.patch.object(
        connection, "cursor", side_effect=OperationalError("connection refused")
    ):
        response = client.get("/readyz", HTTP_X_REQUEST_ID="ready-1")
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert response.json()["error"] == {
        "code": "unavailable",
        "message": "The database is not reachable.",
        "request_id": "ready-1",
    }


def test_lost_database_in_an_api_view_is_503_not_500(client, db, org, make_key):
    key, token = make_key(org)
    with mock.patch(
        "apikeys.authentication._load_state", side_effect=OperationalError("server closed")
    ):
        response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response["Retry-After"].isdigit()
