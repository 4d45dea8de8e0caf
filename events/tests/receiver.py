"""A real HTTP receiver on loopback for webhook tests: records requests, answers as scripted.

Plain http.server in a thread: nothing of ours on the receiving side, so what a
delivery looks like is judged by something we did not write (and every signature by
the reference `standardwebhooks` package).
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Reply:
    """How to answer one request."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: threading.Event | None = None  # answer only once this is set
    drip: float = 0.0  # send the body one byte per `drip` seconds
    reset: bool = False  # close the connection without answering


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records what it receives."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.server_names: list[str | None] = []  # the SNI each TLS client sent
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.respond = None  # or a function (Received, all received so far) -> Reply
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = Received(self.path, dict(self.headers.items()), body, time.monotonic())
                with receiver._lock:
                    receiver.received.append(request)
                    if receiver.respond is not None:
                        reply = receiver.respond(request, list(receiver.received))
                    elif receiver.replies:
                        reply = receiver.replies.pop(0)
                    else:
                        reply = receiver.default
                receiver.arrived.set()
                if reply.hang is not None:
                    reply.hang.wait(120)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    self.connection.close()
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.drip:
                        for byte in reply.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up on us: that is what some tests want

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verified(request: Received, secret: str) -> dict:
    """Return the payload of `request` after the reference library verified its signature."""
    return Webhook(secret).verify(request.body, request.headers)
