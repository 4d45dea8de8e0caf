"""Body limits under a real gunicorn: an oversized body gets its 413, never a reset.

The in-process tests cannot show this: only a real server closes the socket, and a
server that closes it with a large body still unread makes the kernel answer with a
reset, which loses the response the client was about to read.
"""

from __future__ import annotations

import http.client
import json

import pytest

from harness.environment import production_env
from harness.servers import Gunicorn

pytestmark = pytest.mark.server

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server():
    # The test settings only for their plain static storage: a page renders without
    # the manifest that `collectstatic` would write.
    gunicorn = Gunicorn(env=production_env(DJANGO_SETTINGS_MODULE="config.settings_test"))
    gunicorn.start()
    try:
        yield gunicorn
    finally:
        gunicorn.stop()


def post(server: Gunicorn, path: str, body: bytes, **headers: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(
            "POST", path, body=body, headers={"Content-Type": "application/json", **headers}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("size", [3 * MB, 30 * MB])
def test_an_oversized_api_body_gets_a_json_413_not_a_reset(server, size):
    body = b'{"name": "' + b"a" * size + b'"}'
    status, headers, content = post(
        server, "/api/v1/keys", body, Authorization="Bearer kw_live_nothing"
    )
    assert status == 413, content[:300]
    assert headers["Content-Type"] == "application/json"
    error = json.loads(content)["error"]
    assert error["code"] == "payload_too_large"
    assert error["request_id"] == headers["X-Request-Id"]


def test_an_oversized_form_on_a_page_gets_a_413_not_a_reset(server):
    status, _, content = post(
        server,
        "/accounts/login/",
        b"username=" + b"a" * (30 * MB),
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 413, content[:300]


def post_chunked(server: Gunicorn, path: str, parts: list[bytes], **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", path, body=iter(parts), headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_an_oversized_chunked_body_gets_a_json_413_not_a_reset(server):
    parts = [b'{"name": "', *([b"a" * 65536] * 480), b'"}']  # 30 MiB, no Content-Length
    status, content = post_chunked(
        server, "/api/v1/keys", parts, **{"Content-Type": "application/json"}
    )
    assert status == 413, content[:300]
    assert json.loads(content)["error"]["code"] == "payload_too_large"


def test_a_small_chunked_body_is_read_not_dropped(server):
    """Django reads no body without a Content-Length; the edge reads it for Django.

    The proof: a NUL in the chunked form is refused (400) before the CSRF check, which
    would answer 403 to the empty form Django alone would have seen.
    """
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _ = post_chunked(server, "/accounts/login/", [b"username=a%00", b"&password=b"], **form)
    assert status == 400
    status, _ = post_chunked(server, "/accounts/login/", [b"username=a", b"&password=b"], **form)
    assert status == 403  # now the form is read, and CSRF refuses it as it should
