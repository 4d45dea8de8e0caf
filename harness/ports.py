"""Free TCP ports for the servers the harness starts, reserved so that no two runs share one.

A port is handed out only when three things hold: this machine's harness users
do not hold it (an exclusive `flock` on a file named after it, kept until the
reservation is released or its process dies), no socket uses it on any local
address (not even a closed connection in TIME_WAIT), and nothing answers on it.
The reservation outlives the server's restarts (a PostgreSQL stopped and started
again keeps its port).

Ports come from 19000-19999 by default (`KEYWARD_HARNESS_PORTS=20000-20999`
chooses others), below Linux's ephemeral range (32768-60999 here): a port in
that range can be taken at any moment by some client connection's local end,
and a server restarted on it then cannot bind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import tempfile
from pathlib import Path

from harness.base import HarnessError

PORTS_VARIABLE = "KEYWARD_HARNESS_PORTS"
DEFAULT_PORTS = range(19000, 20000)
LOCK_DIRECTORY = Path(tempfile.gettempdir()) / "keyward-harness-ports"


class NoFreePort(HarnessError):
    """Every port of the range is reserved, bound or answering."""


def configured_ports() -> range:
    """Return the range in KEYWARD_HARNESS_PORTS ("first-last", inclusive), or 19000-19999."""
    value = os.environ.get(PORTS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_PORTS
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", value)
    if match is None:
        raise HarnessError(f"{PORTS_VARIABLE}={value!r}: expected first-last, e.g. 20000-20999")
    first, last = int(match[1]), int(match[2] or match[1])
    ports = range(first, last + 1)
    if not ports or ports.start < 1024 or ports.stop > 65536:
        raise HarnessError(f"{PORTS_VARIABLE}={value!r}: expected a range within 1024-65535")
    return ports


def is_bindable(port: int, host: str = "0.0.0.0") -> bool:  # noqa: S104 (bound, never listening)
    """Return whether `port` is unused on every local address, connections included.

    Binding the wildcard address without SO_REUSEADDR fails while any socket uses
    the port on any local address (IPv4 or dual-stack IPv6): a listener, a socket
    bound before listening, even a connection in TIME_WAIT. Stricter than a server
    needs, so a port that passes can be bound by any server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Return whether something accepts connections on `host`:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            return probe.connect_ex((host, port)) == 0
        except OSError:
            return False


class Port:
    """A reserved port: `number` is ours until `release()` (or until this process ends)."""

    def __init__(self, number: int, lock: int | None) -> None:
        self.number = number
        self._lock = lock

    def __repr__(self) -> str:
        state = "reserved" if self.reserved else "released"
        return f"<Port {self.number} {state}>"

    def __int__(self) -> int:
        return self.number

    @property
    def reserved(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        """Give the port back; releasing twice is harmless."""
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops its flock
            self._lock = None

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(number: int) -> int | None:
    """Return a descriptor holding the exclusive lock of port `number`, or None if held.

    Lock files are never deleted: deleting one while another process has it open
    would let two processes lock two different files of the same name.
    """
    LOCK_DIRECTORY.mkdir(mode=0o1777, parents=True, exist_ok=True)
    path = LOCK_DIRECTORY / f"{number}.lock"
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:
        return None  # another user's lock file that we may not even read: theirs
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(descriptor)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return descriptor


def is_reserved(number: int) -> bool:
    """Return whether a reservation (of any process, this one included) holds port `number`."""
    lock = _lock(number)
    if lock is None:
        return True
    os.close(lock)
    return False


# Where this process's next search starts: spread by pid so that runs started
# together do not all try the same ports first, and moved past each port handed
# out so that a port just released (its last connections in TIME_WAIT) rests.
_next_offset: int | None = None


def reserve_port(ports: range | None = None) -> Port:
    """Return a reserved port that nothing on this machine binds or answers on.

    Raises NoFreePort when the whole range is taken.
    """
    global _next_offset
    ports = ports if ports is not None else configured_ports()
    if _next_offset is None:
        _next_offset = os.getpid()
    for step in range(len(ports)):
        index = (_next_offset + step) % len(ports)
        number = ports[index]
        lock = _lock(number)
        if lock is None:
            continue
        if is_bindable(number) and not is_listening(number):
            _next_offset = index + 1
            return Port(number, lock)
        os.close(lock)
    raise NoFreePort(f"no free port in {ports.start}-{ports.stop - 1} ({PORTS_VARIABLE})")
