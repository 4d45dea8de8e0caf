"""Where webhooks may go: URL rules, and the address ranges refused (SSRF).

A URL is checked when an endpoint is saved, and the address is checked again at
every delivery on the address the worker actually connects to (events/transport.py
resolves the name, checks each address, and connects to a checked one itself), so a
name that resolves to a public address at save time and to a private one later (DNS
rebinding) is refused at delivery. `KEYWARD_WEBHOOK_ALLOW_PRIVATE=1` turns the
address check off, for development and tests only; `KEYWARD_WEBHOOK_ALLOW_HTTP=1`
(or DEBUG) allows plain http.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from config.errors import ValidationFailed

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Everything that is not the public internet, by name (IANA special-purpose registries).
REFUSED_NETWORKS: dict[str, list[str]] = {
    "unspecified": ["0.0.0.0/8", "::/128"],
    "loopback": ["127.0.0.0/8", "::1/128"],
    "private": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
    "shared (carrier-grade NAT)": ["100.64.0.0/10"],
    "link-local": ["169.254.0.0/16", "fe80::/10"],
    "multicast": ["224.0.0.0/4", "ff00::/8"],
    "documentation": [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "3fff::/20",
    ],
    "reserved": [
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "5f00::/16",
        "fec0::/10",
    ],
}
_NETWORKS = [
    (ipaddress.ip_network(block), name)
    for name, blocks in REFUSED_NETWORKS.items()
    for block in blocks
]


def refusal(ip: IPAddress) -> str | None:
    """Return why deliveries may not go to `ip` (its range's name), or None if it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return refusal(embedded)
    for network, name in _NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    # Python's own tables as a second net, in case the list above misses a new range.
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_link_local:
        return "reserved"
    if ip.is_loopback or ip.is_unspecified:
        return "loopback"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def private_allowed() -> bool:
    return bool(getattr(settings, "KEYWARD_WEBHOOK_ALLOW_PRIVATE", False))


def http_allowed() -> bool:
    return bool(settings.DEBUG or getattr(settings, "KEYWARD_WEBHOOK_ALLOW_HTTP", False))


class ResolveError(Exception):
    """The host name did not resolve (in time)."""


class Resolver:
    """getaddrinfo with a deadline: a hung DNS server must not hang a worker."""

    timeout = RESOLVE_TIMEOUT

    def resolve(self, host: str, port: int, timeout: float | None = None) -> list[IPAddress]:
        """Return the addresses `host` resolves to, in the resolver's order, without repeats."""
        timeout = self.timeout if timeout is None else timeout
        result: dict[str, object] = {}

        def lookup() -> None:
            try:
                result["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                result["error"] = exc

        thread = threading.Thread(target=lookup, name="keyward-resolve", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise ResolveError(f"resolving {host} took longer than {timeout:g} s")
        if "error" in result:
            raise ResolveError(f"{host} does not resolve")
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in result["infos"]:  # type: ignore[union-attr]
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise ResolveError(f"{host} does not resolve")
        return addresses


resolver = Resolver()


@dataclass(frozen=True)
class Destination:
    """A checked URL, split into what a connection needs."""

    url: str
    scheme: str
    host: str
    port: int
    path: str


def _field_error(message: str) -> ValidationFailed:
    return ValidationFailed.on("url", message)


def parse_url(url: object) -> Destination:
    """Return the URL's parts, or raise ValidationFailed naming `url` (no network access)."""
    if not isinstance(url, str) or not url:
        raise _field_error("Enter the URL that should receive the events.")
    if len(url) > MAX_URL_LENGTH:
        raise _field_error(f"Use at most {MAX_URL_LENGTH} characters.")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url) or not url.isascii():
        raise _field_error("Enter a URL without spaces or control characters (encode them).")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _field_error("Enter a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _field_error("Use an https:// URL.")
    if scheme == "http" and not http_allowed():
        raise _field_error("Use an https:// URL: events are sent over TLS only.")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _field_error("Leave credentials out of the URL; check the signature instead.")
    if "#" in url:
        raise _field_error("Leave the fragment (#…) out: it is never sent.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _field_error("Enter a URL with a host name.")
    if port == 0:
        raise _field_error("Enter a valid port.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Destination(
        url=url,
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        path=path,
    )


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: object) -> Destination:
    """Check a URL as an endpoint is saved: its form, and every address its host resolves to."""
    target = parse_url(url)
    if private_allowed():
        return target
    ip = literal_ip(target.host)
    if ip is not None:
        addresses = [ip]
    else:
        try:
            addresses = resolver.resolve(target.host, target.port)
        except ResolveError as exc:
            raise _field_error(f"The host name could not be resolved ({exc}).") from None
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise _field_error(
                f"Events cannot be sent to {address}: it is a {reason} address. "
                "Use a public address."
            )
    return target
