"""A TCP proxy on loopback that tests can cut: the network between a process and Redis.

`forward` relays both ways; `blackhole()` keeps every connection open but relays
nothing more (a partition: the other side only sees silence); `cut()` closes
every connection and refuses new ones (the far end went away); `heal()` relays
again for new connections.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class Proxy:
    """Relay 127.0.0.1:`port` to `target`; always `close()` it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.relaying = threading.Event()
        self.relaying.set()
        self.refusing = False
        self.closed = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="test-proxy").start()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self.closed:
                if not self.relaying.wait(0.05):
                    continue  # hold the bytes: neither side hears anything
                readable, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in peers:
                with contextlib.suppress(OSError):
                    sock.close()

    def blackhole(self) -> None:
        self.relaying.clear()

    def heal(self) -> None:
        self.refusing = False
        self.relaying.set()

    def cut(self) -> None:
        self.refusing = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def close(self) -> None:
        self.closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.close()
