"""Where webhooks may go: the refused ranges (IPv4 and IPv6) and the URL rules."""

from __future__ import annotations

import ipaddress

import pytest

from config.errors import ValidationFailed
from events import addresses


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),  # noqa: S104 (a string under test, not a bind)
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("169.254.169.254", "link-local"),  # the cloud metadata address
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("192.0.2.10", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("192.0.0.8", "reserved"),
        ("198.18.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("2001::1", "reserved"),  # Teredo
        ("100::1", "reserved"),
        ("fec0::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_refused_ranges(address, reason):
    assert addresses.refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert addresses.refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "javascript:alert(1)",
        "https://",
        "https://hooks.example.com:0/",
        "https://hooks.example.com:99999/",
        "https://a@hooks.example.com/",
        "https://hooks.example.com/#",
        "https://hooks.example.com/\r\nX-Injected: 1",
        "https://hooks.exämple.com/",
        "https://hooks.example.com/" + "a" * 2048,
        "",
        None,
        ["https://hooks.example.com/"],
    ],
)
def test_urls_refused_whatever_the_switches(url, settings):
    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True
    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    with pytest.raises(ValidationFailed) as caught:
        addresses.check_url(url)
    assert list(caught.value.extra["fields"]) == ["url"]


def test_a_url_is_split_for_the_connection():
    destination = addresses.parse_url("https://Hooks.Example.com./in?a=1&b=2")
    assert (destination.scheme, destination.host, destination.port, destination.path) == (
        "https",
        "hooks.example.com",
        443,
        "/in?a=1&b=2",
    )
    assert addresses.parse_url("https://[2606:4700::1]:8443").host == "2606:4700::1"


def test_every_address_a_name_resolves_to_must_be_public(monkeypatch):
    class Mixed(addresses.Resolver):
        def resolve(self, host, port, timeout=None):
            return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.5")]

    monkeypatch.setattr(addresses, "resolver", Mixed())
    with pytest.raises(ValidationFailed) as caught:
        addresses.check_url("https://mixed.example.com/")
    assert "10.0.0.5" in caught.value.extra["fields"]["url"][0]


def test_a_hung_resolver_gives_up(monkeypatch):
    import socket
    import time

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(2))
    started = time.monotonic()
    with pytest.raises(addresses.ResolveError):
        addresses.Resolver().resolve("slow.example.com", 443, timeout=0.2)
    assert time.monotonic() - started < 1
