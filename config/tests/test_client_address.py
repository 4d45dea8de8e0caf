"""The client's address: behind a proxy on a Unix socket, and IPv4 written as IPv6."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from apikeys.models import APIKey
from apikeys.usage import last_uses
from audit.models import AuditEvent
from config import net

PASSWORD = "correct horse battery staple"
ON_A_SOCKET = ""  # what gunicorn puts in REMOTE_ADDR for a peer on a Unix socket


def whoami(client, token, remote, forwarded=None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}", "REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.get("/api/v1/whoami", **extra)


def address_of(remote: str, forwarded: str | None = None) -> str | None:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return net.client_ip(RequestFactory().get("/", **extra))


@pytest.fixture(autouse=True)
def _no_socket_seen():
    net.forget_unix_socket()
    yield
    net.forget_unix_socket()


# Behind a proxy on a Unix socket


@override_settings(KEYWARD_TRUSTED_PROXIES=["unix"])
def test_a_proxy_on_a_unix_socket_is_trusted_when_told():
    assert address_of(ON_A_SOCKET, "203.0.113.5") == "203.0.113.5"
    # Right to left: the entry the proxy wrote is the client; what the client wrote is not.
    assert address_of(ON_A_SOCKET, "198.51.100.1, 203.0.113.5") == "203.0.113.5"
    assert address_of(ON_A_SOCKET) is None  # a proxy that says nothing


@override_settings(KEYWARD_TRUSTED_PROXIES=["unix", "10.0.0.0/8"])
def test_trusted_hops_behind_the_socket_are_skipped():
    assert address_of(ON_A_SOCKET, "203.0.113.5, 10.1.1.1") == "203.0.113.5"
    # A TCP peer that is not trusted stays the client, whatever it forwards.
    assert address_of("192.0.2.9", "203.0.113.5") == "192.0.2.9"


def test_without_trust_a_socket_peer_has_no_address():
    assert address_of(ON_A_SOCKET, "203.0.113.5") is None


@override_settings(KEYWARD_TRUSTED_PROXIES=["unix"])
def test_allowlist_and_invalid_key_guard_work_behind_a_trusted_socket(client, org, make_key):
    _, token = make_key(org, allowed_ips=["0.0.0.0/0"])
    assert whoami(client, token, ON_A_SOCKET, "203.0.113.5").status_code == 200
    wrong = token[:-8] + ("A" if token[-8] != "A" else "B") + token[-7:]
    codes = [whoami(client, wrong, ON_A_SOCKET, "203.0.113.5").status_code for _ in range(21)]
    assert codes[-1] == 429 and set(codes[:20]) == {401}
    # Another client behind the same proxy is counted apart.
    assert whoami(client, wrong, ON_A_SOCKET, "203.0.113.6").status_code == 401


@override_settings(KEYWARD_TRUSTED_PROXIES=["unix"])
def test_login_throttling_counts_per_forwarded_address(owner):
    client = Client(REMOTE_ADDR=ON_A_SOCKET, HTTP_X_FORWARDED_FOR="203.0.113.5")
    for _ in range(10):
        client.post(reverse("login"), {"username": owner.email, "password": "nope"})
    response = client.post(reverse("login"), {"username": owner.email, "password": PASSWORD})
    assert b"Too many failed attempts" in response.content
    elsewhere = Client(REMOTE_ADDR=ON_A_SOCKET, HTTP_X_FORWARDED_FOR="203.0.113.6")
    response = elsewhere.post(reverse("login"), {"username": owner.email, "password": PASSWORD})
    assert response.status_code == 302


def ids(messages):
    return {message.id for message in messages}


def test_a_unix_socket_without_trust_is_warned_about():
    assert "keyward.W010" not in ids(run_checks())
    address_of(ON_A_SOCKET)  # a request arrives on a socket
    assert "keyward.W010" in ids(run_checks())
    with override_settings(KEYWARD_TRUSTED_PROXIES=["unix"]):
        assert "keyward.W010" not in ids(run_checks())


def test_a_socket_listener_is_warned_about_before_any_request():
    net.note_unix_socket()
    assert "keyward.W010" in ids(run_checks())


@override_settings(KEYWARD_TRUSTED_PROXIES=["10.0.0.0/8", "not-a-network"])
def test_a_malformed_trusted_proxy_is_an_error():
    assert "keyward.E010" in ids(run_checks())


# IPv4 written as IPv6 (::ffff:a.b.c.d) is the IPv4 address everywhere

MAPPED = "::ffff:10.5.5.5"


def test_a_mapped_address_is_the_ipv4_address():
    assert address_of(MAPPED) == "10.5.5.5"


@override_settings(KEYWARD_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_mapped_proxy_and_a_mapped_forwarded_address_are_ipv4():
    assert address_of("::ffff:10.1.1.1", "::ffff:203.0.113.5") == "203.0.113.5"


def test_a_mapped_address_passes_an_ipv4_allowlist_and_is_recorded_as_ipv4(
    client, org, make_key, api
):
    key, token = make_key(org, allowed_ips=["10.5.5.0/24"], scopes=["keys:read", "keys:write"])
    assert whoami(client, token, MAPPED).status_code == 200
    last_uses.flush()  # the last use is written with the usage batches
    key.refresh_from_db()
    assert key.last_used_ip == "10.5.5.5"
    victim, _ = make_key(org, scopes=["keys:read"])
    response = api(token).post(f"/api/v1/keys/{victim.pk}/revoke", REMOTE_ADDR=MAPPED)
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="api_key.revoked", target_id=victim.pk).ip == "10.5.5.5"
    last_uses.flush()
    assert APIKey.objects.get(pk=key.pk).last_used_ip == "10.5.5.5"


def test_a_mapped_address_shares_the_login_budget_of_its_ipv4_form(make_user, monkeypatch):
    from orgs.throttle import LoginThrottle

    monkeypatch.setattr(LoginThrottle, "address_limit", 4)
    make_user("victim@example.com")
    for i in range(4):
        remote = MAPPED if i % 2 else "10.5.5.5"
        Client(REMOTE_ADDR=remote).post(
            reverse("login"), {"username": f"guess{i}@example.com", "password": "x"}
        )
    response = Client(REMOTE_ADDR=MAPPED).post(
        reverse("login"), {"username": "victim@example.com", "password": PASSWORD}
    )
    assert b"Too many failed attempts" in response.content
