"""Over TLS the worker connects to the checked address and speaks for the name: Host and SNI."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from events import addresses
from events.addresses import parse_url
from events.tests.receiver import Receiver
from events.transport import Transport, _PinnedHTTPSConnection

NAME = "hooks.keyward.test"


def _certificate(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


class Pinned(addresses.Resolver):
    """The name resolves to loopback, where the TLS receiver listens."""

    def resolve(self, host, port, timeout=None):
        assert host == NAME
        return [ipaddress.ip_address("127.0.0.1")]


@pytest.fixture
def tls_receiver(monkeypatch, settings):
    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True
    monkeypatch.setattr(addresses, "resolver", Pinned())
    cert, key = _certificate(NAME)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(cert_file, key_file)
        receiver = Receiver(tls=server_context)
    # The worker trusts this test's certificate authority, and nothing else.
    monkeypatch.setattr(
        _PinnedHTTPSConnection, "context", ssl.create_default_context(cadata=cert.decode())
    )
    yield receiver
    receiver.close()


def _post(receiver, name: str):
    port = receiver.server.server_address[1]
    destination = parse_url(f"https://{name}:{port}/in")
    return Transport().post(destination, b"{}", {"webhook-id": "evt_tls"}, timeout=5)


def test_the_name_goes_in_host_and_sni_while_the_checked_address_is_connected(tls_receiver):
    answer = _post(tls_receiver, NAME)
    assert answer.status == 200, answer.error
    assert answer.address == "127.0.0.1"
    [request] = tls_receiver.received
    assert request.headers["Host"] == f"{NAME}:{tls_receiver.server.server_address[1]}"
    assert tls_receiver.server_names == [NAME]


def test_a_certificate_for_another_name_fails_the_attempt(tls_receiver, monkeypatch):
    class Elsewhere(addresses.Resolver):
        def resolve(self, host, port, timeout=None):
            return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(addresses, "resolver", Elsewhere())
    answer = _post(tls_receiver, "other.keyward.test")
    assert answer.status is None
    assert "TLS error" in answer.error
    assert tls_receiver.received == []
