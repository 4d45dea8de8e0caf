"""The client's address, taken from X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry)


def trusted_proxies() -> tuple[Network, ...]:
    """Return the parsed KEYWARD_TRUSTED_PROXIES."""
    return _networks(tuple(settings.KEYWARD_TRUSTED_PROXIES))


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(address, proxies: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(request: HttpRequest) -> str | None:
    """Return the client's address: REMOTE_ADDR, unless that is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read right to left and the first
    address that is not itself a trusted proxy is the client: entries further
    left were written by the client and prove nothing.
    """
    remote = _parse(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return None
    proxies = trusted_proxies()
    if not proxies or not _is_trusted(remote, proxies):
        return str(remote)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _parse(entry)
        if address is None:
            return str(remote)
        if not _is_trusted(address, proxies):
            return str(address)
    return str(remote)
