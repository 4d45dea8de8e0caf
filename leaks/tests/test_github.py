"""POST /api/v1/leaks/github: GitHub's secret scanning partner format, signed with ECDSA.

The signing keys are served by a real local HTTP server, the way GitHub serves
its own; the test makes its own P-256 key pair and signs like GitHub does.
"""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.cache import cache
from django.test import override_settings

from apikeys import tokens
from apikeys.models import APIKey
from audit.models import AuditEvent
from leaks import github

URL = "/api/v1/leaks/github"


def pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class KeyServer:
    """A local stand-in for GitHub's public keys endpoint."""

    def __init__(self):
        self.body = b""
        self.status = 200
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/keys"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, *keys):
        self.body = json.dumps(
            {
                "public_keys": [
                    {"key_identifier": name, "key": pem(key), "is_current": True}
                    for name, key in keys
                ]
            }
        ).encode()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key_server(signing_key):
    server = KeyServer()
    server.publish(("kid-1", signing_key))
    with override_settings(KEYWARD_GITHUB_KEYS_URL=server.url):
        yield server
    server.close()


def sign(private_key, body: bytes) -> str:
    return base64.b64encode(private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


def post(client, body: bytes, signature: str | None, identifier: str | None = "kid-1"):
    headers = {}
    if signature is not None:
        headers["HTTP_GITHUB_PUBLIC_KEY_SIGNATURE"] = signature
    if identifier is not None:
        headers["HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER"] = identifier
    return client.post(URL, body, content_type="application/json", **headers)


def reports(*tokens_, url="https://github.com/acme/app/blob/main/.env"):
    return json.dumps(
        [{"token": t, "type": "keyward_api_key", "url": url, "source": "content"} for t in tokens_]
    ).encode()


def test_true_positives_are_revoked_and_labelled(client, org, make_key, key_server, signing_key):
    key, token = make_key(org)
    fake = tokens.generate("live").token
    body = reports(token, fake, "kw_live_nonsense")
    response = post(client, body, sign(signing_key, body))
    assert response.status_code == 200
    answer = response.json()
    assert answer == [
        {
            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
            "token_type": "keyward_api_key",
            "label": "true_positive",
        },
        {
            "token_hash": hashlib.sha256(fake.encode()).hexdigest(),
            "token_type": "keyward_api_key",
            "label": "false_positive",
        },
        {
            "token_hash": hashlib.sha256(b"kw_live_nonsense").hexdigest(),
            "token_type": "keyward_api_key",
            "label": "false_positive",
        },
    ]
    assert token not in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.leaked", target_id=key.id)
    assert event.changes["reporter"]["after"] == "github"
    assert event.changes["url"]["after"] == "https://github.com/acme/app/blob/main/.env"
    assert event.changes["source"]["after"] == "content"


@pytest.mark.parametrize(
    "tamper",
    ["no signature", "no identifier", "not base64", "other key", "body changed", "unknown id"],
)
def test_a_bad_signature_is_401_and_revokes_nothing(
    client, org, make_key, key_server, signing_key, tamper
):
    key, token = make_key(org)
    body = reports(token)
    signature, identifier = sign(signing_key, body), "kid-1"
    if tamper == "no signature":
        signature = None
    elif tamper == "no identifier":
        identifier = None
    elif tamper == "not base64":
        signature = "%%%not-base64%%%"
    elif tamper == "other key":
        signature = sign(ec.generate_private_key(ec.SECP256R1()), body)
    elif tamper == "body changed":
        body = reports(token, url="https://example.com/elsewhere")
    elif tamper == "unknown id":
        identifier = "kid-unknown"
    response = post(client, body, signature, identifier)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    key.refresh_from_db()
    assert key.revoked_at is None and key.leaked_at is None


def test_keys_are_cached_and_an_unknown_identifier_refetches_at_most_once_a_minute(
    client, org, make_key, key_server, signing_key
):
    _key, token = make_key(org)
    body = reports(token)
    assert post(client, body, sign(signing_key, body)).status_code == 200
    assert post(client, body, sign(signing_key, body)).status_code == 200
    assert key_server.hits == 1
    for _ in range(5):
        assert post(client, body, "AAAA", "kid-new").status_code == 401
    assert key_server.hits == 2  # one refetch for the unknown id, not five


def test_a_rotated_github_key_is_found_by_the_refetch(client, org, make_key, key_server):
    _key, token = make_key(org)
    body = reports(token)
    key_server.hits = 0
    github.GitHubKeys().keys()  # the set with kid-1 is cached
    new_key = ec.generate_private_key(ec.SECP256R1())
    key_server.publish(("kid-2", new_key))
    response = post(client, body, sign(new_key, body), "kid-2")
    assert response.status_code == 200
    assert response.json()[0]["label"] == "true_positive"


@pytest.mark.parametrize("failure", ["down", "garbage", "500"])
def test_github_unreachable_uses_the_last_good_keys(
    client, org, make_key, key_server, signing_key, failure
):
    _key, token = make_key(org)
    body = reports(token)
    github.GitHubKeys().keys()
    cache.delete(github.FRESH_KEY)  # the hour is over
    if failure == "down":
        key_server.close()
    elif failure == "garbage":
        key_server.body = b"<html>rate limited</html>"
    else:
        key_server.status = 500
    assert post(client, body, sign(signing_key, body)).status_code == 200


@pytest.mark.parametrize("failure", ["down", "garbage", "no P-256 key"])
def test_no_keys_ever_fetched_is_503_not_500(client, org, make_key, key_server, failure):
    _key, token = make_key(org)
    if failure == "down":
        key_server.close()
    elif failure == "garbage":
        key_server.body = b"[" * 100000
    else:
        other_curve = ec.generate_private_key(ec.SECP384R1())
        key_server.publish(("kid-1", other_curve))
    body = reports(token)
    response = post(client, body, sign(ec.generate_private_key(ec.SECP256R1()), body))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert APIKey.objects.get(pk=_key.pk).revoked_at is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"token": "x"}', b'[{"token": 5}]', b"[1]", b'[{"type": "x"}]'],
)
def test_signed_but_malformed_bodies_are_400(client, db, key_server, signing_key, body):
    response = post(client, body, sign(signing_key, body))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
