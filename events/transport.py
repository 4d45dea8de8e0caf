"""One webhook POST: to a checked address, within a hard deadline, reading little back.

The worker resolves the host itself, checks every address against the refused
ranges (events/addresses.py) and connects to a checked address, sending the name in
`Host` and, over TLS, in SNI and the certificate check: what was checked is what is
connected to. The whole attempt (resolving, connecting, sending, reading the status
and headers, and the first 1 KB of the body) has one deadline, enforced by a timer
that shuts the socket, so a receiver that trickles bytes cannot hold a worker.
Redirects are never followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from events.addresses import Destination, ResolveError, literal_ip, private_allowed, refusal

USER_AGENT = "Keyward-Webhooks/1.0 (+Standard Webhooks)"
EXCERPT_BYTES = 1024


@dataclass
class Answer:
    """What one attempt got: a status and the start of the body, or the reason it failed."""

    status: int | None = None
    headers: dict[str, str] | None = None
    excerpt: str = ""
    error: str = ""
    address: str = ""
    latency_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        return (self.headers or {}).get(name.lower())


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a given address, speaking for the host name it was made with."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS: SNI and the certificate check use the host name, not the address."""

    default_port = 443
    context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def _excerpt(raw: bytes) -> str:
    # Text for people, and for a PostgreSQL text column: no NUL byte.
    return raw[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class Transport:
    """POST a signed body to a destination; never raise, never outlive the deadline."""

    resolver = None  # events.addresses.resolver unless a test gives its own
    clock = staticmethod(time.monotonic)

    def addresses(self, destination: Destination, deadline: float) -> list[str]:
        """Return the addresses to try, checked; raise ResolveError or PermissionError."""
        from events import addresses as module

        ip = literal_ip(destination.host)
        if ip is not None:
            found = [ip]
        else:
            resolver = self.resolver or module.resolver
            found = resolver.resolve(
                destination.host,
                destination.port,
                timeout=max(0.1, min(resolver.timeout, deadline - self.clock())),
            )
        if private_allowed():
            return [str(ip) for ip in found]
        allowed = [str(ip) for ip in found if refusal(ip) is None]
        if not allowed:
            ip = found[0]
            raise PermissionError(f"refused address {ip}: it is a {refusal(ip)} address")
        return allowed

    def post(
        self, destination: Destination, body: bytes, headers: dict[str, str], timeout: float
    ) -> Answer:
        """Send one attempt and return what came back, or why nothing did."""
        started = self.clock()
        deadline = started + timeout
        answer = Answer()
        try:
            candidates = self.addresses(destination, deadline)
        except (ResolveError, PermissionError) as exc:
            answer.error = str(exc)
            answer.latency_ms = int((self.clock() - started) * 1000)
            return answer
        last_error = ""
        for address in candidates:
            remaining = deadline - self.clock()
            if remaining <= 0:
                last_error = f"timed out after {timeout:g} s"
                break
            answer = self._post_to(address, destination, body, headers, remaining, timeout)
            answer.latency_ms = int((self.clock() - started) * 1000)
            if answer.status is not None or not answer.error.startswith("could not connect"):
                return answer
            last_error = answer.error
        answer.error = last_error or answer.error
        answer.latency_ms = int((self.clock() - started) * 1000)
        return answer

    def _post_to(
        self,
        address: str,
        destination: Destination,
        body: bytes,
        headers: dict[str, str],
        remaining: float,
        timeout: float,
    ) -> Answer:
        connection_class = (
            _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
        )
        connection = connection_class(
            destination.host, destination.port, address=address, timeout=remaining
        )
        answer = Answer(address=address)
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(remaining, cut)
        timer.daemon = True
        timer.start()
        phase = "connect"
        try:
            connection.connect()
            phase = "send"
            connection.request(
                "POST",
                destination.path,
                body=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "Connection": "close",
                },
            )
            phase = "read"
            response = connection.getresponse()
            answer.status = response.status
            answer.headers = {name.lower(): value for name, value in response.getheaders()}
            answer.excerpt = _excerpt(response.read(EXCERPT_BYTES))
            if 300 <= response.status < 400:
                answer.error = f"redirect ({response.status}) not followed"
        except Exception as exc:
            if answer.status is not None:
                pass  # the status line and headers came; only the body's start broke off
            elif expired.is_set() or isinstance(exc, TimeoutError):
                answer.error = f"timed out after {timeout:g} s"
            elif phase == "connect":
                answer.error = f"could not connect to {address}: {_reason(exc)}"
            else:
                answer.error = f"connection failed while {phase}ing: {_reason(exc)}"
        finally:
            timer.cancel()
            connection.close()
        return answer


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__})"
    return type(exc).__name__


transport = Transport()
