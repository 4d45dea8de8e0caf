"""The client's address, taken from X-Forwarded-For only through trusted proxies.

`KEYWARD_TRUSTED_PROXIES` lists CIDR blocks, and may hold the word `unix`: a
server bound to a Unix socket (`gunicorn -b unix:/run/keyward.sock`) sees no
address for its peer (REMOTE_ADDR is empty), so the proxy in front of it is
trusted only when `unix` says so. Without it, such a request has no client
address, every per-address defence is off, and a system check says so
(`config/checks.py`).

An IPv4 address written as IPv6 (`::ffff:10.5.5.5`, as a dual-stack socket
reports it) is the IPv4 address everywhere: allowlists, throttles, the audit log.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNIX_SOCKET = "unix"

logger = logging.getLogger("keyward.net")

# Set once this process has served (or listens on) a Unix socket; the check reads it.
_unix_socket = {"seen": False, "warned": False}


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(entry.strip(), strict=False)
        for entry in entries
        if entry.strip() and entry.strip().lower() != UNIX_SOCKET
    )


def trusted_proxies() -> tuple[Network, ...]:
    """Return the parsed CIDR blocks of KEYWARD_TRUSTED_PROXIES."""
    return _networks(tuple(settings.KEYWARD_TRUSTED_PROXIES))


def trusts_unix_socket() -> bool:
    """Return whether a proxy on a Unix socket is trusted (`unix` in KEYWARD_TRUSTED_PROXIES)."""
    return any(entry.strip().lower() == UNIX_SOCKET for entry in settings.KEYWARD_TRUSTED_PROXIES)


def note_unix_socket() -> None:
    """Record that this process is served on a Unix socket."""
    _unix_socket["seen"] = True


def forget_unix_socket() -> None:
    """Forget what `note_unix_socket` recorded (for tests)."""
    _unix_socket.update(seen=False, warned=False)


def served_on_unix_socket() -> bool:
    """Return whether this process listens on, or has answered, a Unix socket."""
    return _unix_socket["seen"]


def parse_ip(value: str | None) -> Address | None:
    """Return the address in `value`, an IPv4-mapped IPv6 address as IPv4; None if none."""
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normal_ip(value: str | None) -> str | None:
    """Return the canonical text of an address (`::ffff:10.5.5.5` → `10.5.5.5`), or None."""
    address = parse_ip(value)
    return None if address is None else str(address)


def _is_trusted(address: Address, proxies: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def _socket_peer_without_trust(remote: str) -> None:
    note_unix_socket()
    if not _unix_socket["warned"]:
        _unix_socket["warned"] = True
        logger.warning(
            "A request came with REMOTE_ADDR %r, which is not an address (a Unix socket?): "
            "per-address defences are off. Set KEYWARD_TRUSTED_PROXIES=unix to read the "
            "proxy's X-Forwarded-For.",
            remote[:64],
        )


def client_ip(request: HttpRequest) -> str | None:
    """Return the client's address: REMOTE_ADDR, unless that is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read right to left and the first
    address that is not itself a trusted proxy is the client: entries further
    left were written by the client and prove nothing. A peer on a Unix socket
    is a trusted proxy only when KEYWARD_TRUSTED_PROXIES holds `unix`.
    """
    raw = request.META.get("REMOTE_ADDR", "")
    remote = parse_ip(raw)
    proxies = trusted_proxies()
    if remote is None:
        if not trusts_unix_socket():
            _socket_peer_without_trust(raw)
            return None
        note_unix_socket()
    elif not proxies or not _is_trusted(remote, proxies):
        return str(remote)
    nearest = remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = parse_ip(entry)
        if address is None:
            break
        if not _is_trusted(address, proxies):
            return str(address)
        nearest = address
    return None if nearest is None else str(nearest)
