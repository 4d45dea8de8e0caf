"""Web origins of publishable keys: how they are written, checked and matched.

An allowed origin is exact (`https://shop.example.com`, `http://localhost:3000`)
or covers the subdomains of a domain (`https://*.example.com`: any name ending
in `.example.com`, but not `example.com` itself). There is no bare `*`: a
publishable key names the sites that may use it. A request's origin is its
`Origin` header or, without one, the origin of its `Referer`; `Origin: null`
(sandboxed frames, `file:` pages) matches nothing.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from config.errors import ValidationFailed

MAX_ALLOWED_ORIGINS = 100
MAX_ORIGIN_LENGTH = 300
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_ORIGIN_RE = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<wildcard>\*\.)?"
    r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?$"
)


class BadOrigin(ValueError):
    """The text is not an origin a publishable key may list."""


def _host(text: str) -> str:
    if text.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(text[1:-1]).compressed}]"
        except ValueError:
            raise BadOrigin("not a valid IPv6 address") from None
    if not _HOST_RE.match(text):
        raise BadOrigin("not a valid host name")
    return text


def normalise(text: Any, *, allow_wildcard: bool = True) -> str:
    """Return the canonical form of an origin (lower case, no default port), or raise BadOrigin."""
    if not isinstance(text, str) or not text.strip():
        raise BadOrigin("an origin is text like https://shop.example.com")
    raw = text.strip()
    if len(raw) > MAX_ORIGIN_LENGTH or not raw.isascii() or not raw.isprintable():
        raise BadOrigin("an origin is at most 300 printable ASCII characters")
    if raw == "*":
        raise BadOrigin("a bare * is not allowed: name each site, or https://*.example.com")
    lowered = raw.lower()
    scheme = lowered.split("://", 1)[0] if "://" in lowered else ""
    if scheme not in SCHEMES:
        raise BadOrigin("use http:// or https://")
    match = _ORIGIN_RE.match(lowered)
    if match is None:
        rest = lowered.split("://", 1)[1]
        if "*" in rest:
            raise BadOrigin("a wildcard may only open the host, as in https://*.example.com")
        if any(mark in rest for mark in "/?#"):
            raise BadOrigin("an origin has no path, query or fragment: drop what follows the host")
        if "@" in rest:
            raise BadOrigin("an origin has no user name or password")
        raise BadOrigin("write it as scheme://host or scheme://host:port")
    host = _host(match.group("host"))
    wildcard = match.group("wildcard") is not None
    if wildcard:
        if not allow_wildcard:
            raise BadOrigin("a request's origin cannot hold a wildcard")
        if host.startswith("[") or _is_ip(host) or host.count(".") < 1:
            raise BadOrigin("a wildcard covers the subdomains of a domain like example.com")
    port = match.group("port")
    if port is not None:
        number = int(port)
        if not 1 <= number <= 65535:
            raise BadOrigin("the port must be 1 to 65535")
        port = None if number == DEFAULT_PORTS[match.group("scheme")] else str(number)
    return f"{match.group('scheme')}://{'*.' if wildcard else ''}{host}" + (
        f":{port}" if port else ""
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def clean_allowed_origins(value: Any) -> list[str]:
    """Return a list of canonical origins, or raise ValidationFailed on `allowed_origins`."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationFailed.on("allowed_origins", "Give a list of origins.")
    if len(value) > MAX_ALLOWED_ORIGINS:
        raise ValidationFailed.on("allowed_origins", f"Give at most {MAX_ALLOWED_ORIGINS} origins.")
    origins: list[str] = []
    for entry in value:
        try:
            origin = normalise(entry)
        except BadOrigin as exc:
            shown = entry[:60] if isinstance(entry, str) else type(entry).__name__
            raise ValidationFailed.on(
                "allowed_origins", f"'{shown}' is not an allowed origin: {exc}."
            ) from None
        if origin not in origins:
            origins.append(origin)
    return origins


def request_origin(meta: dict[str, Any]) -> str | None:
    """Return the origin a request came from (`Origin`, else `Referer`'s), or None."""
    origin = meta.get("HTTP_ORIGIN")
    if origin is None:
        referer = meta.get("HTTP_REFERER")
        if not referer:
            return None
        try:
            parts = urlsplit(referer)
        except ValueError:
            return None
        if not parts.scheme or not parts.netloc:
            return None
        origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    try:
        return normalise(origin, allow_wildcard=False)
    except BadOrigin:
        return None  # `null`, or anything else no allowed origin can match


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Return whether a canonical request origin is one of `allowed`, wildcards included."""
    if origin is None:
        return False
    for entry in allowed:
        if entry == origin:
            return True
        if "://*." in entry:
            scheme_and_star, rest = entry.split("*", 1)  # "https://", ".example.com[:port]"
            if origin.startswith(scheme_and_star) and origin.endswith(rest):
                subdomain = origin[len(scheme_and_star) : -len(rest)]
                if subdomain and ":" not in subdomain and "/" not in subdomain:
                    return True
    return False


def match_candidates(origin: str) -> list[str]:
    """Return the allowed-origin entries that would match `origin`: itself and its wildcards."""
    scheme, rest = origin.split("://", 1)
    host, _, port = rest.partition(":")
    suffix = f":{port}" if port else ""
    candidates = [origin]
    if host.startswith("[") or _is_ip(host):
        return candidates
    labels = host.split(".")
    for start in range(1, len(labels) - 1):
        candidates.append(f"{scheme}://*.{'.'.join(labels[start:])}{suffix}")
    return candidates
