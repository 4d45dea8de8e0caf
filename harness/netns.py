"""Hosts of their own on one machine: network namespaces behind a bridge (Linux, root).

    with HostNetwork(["a", "b"]) as network:  # 10.201.0.0/24 unless `subnet` says
        network.gateway                       # 10.201.0.1: the bridge, in this namespace
        network.address("a")                  # 10.201.0.2
        Gunicorn(env, host=network.address("a"), command_prefix=network.prefix("a"))

Each host is a network namespace with `lo` up and `eth0`, one end of a veth pair
whose other end sits on a bridge here, in the caller's namespace, holding the
gateway address. A server started here on the gateway (`ThrowawayPostgres(host=…,
clients=[network.subnet])`, `ThrowawayRedis(host=…)`) is reached from every host,
and every host from here; nothing else is routed.

Names carry the creating process's id in hex: namespaces `kwnet-<pid>-<host>`, the
bridge `kwbr<pid>`, the veths `kwve<pid><n>`. `create()` first deletes what runs of
dead processes left behind; `destroy()` (also registered with atexit, so that an
exception or a Ctrl-C never leaves them) deletes this run's and checks they are gone.
`unavailable()` says why namespaces cannot be made here (not Linux, no `ip`, not
root); a refusal by the kernel while creating raises NamespaceUnavailable.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

from harness.base import HarnessError, wait_until
from harness.processes import pid_alive

DEFAULT_SUBNET = "10.201.0.0/24"
NAMESPACE_RE = re.compile(r"^kwnet-([0-9a-f]+)-[a-z0-9]+$")
LINK_RE = re.compile(r"^(?:kwbr([0-9a-f]+)|kwve([0-9a-f]+)\d)$")
# What the kernel or ip answers where namespaces, bridges or veths may not be made.
REFUSALS = ("Operation not permitted", "Permission denied", "not supported", "Unknown device")


class NamespaceUnavailable(HarnessError):
    """Network namespaces cannot be made here; the message says why."""


def unavailable() -> str | None:
    """Return why network namespaces cannot be made here, or None if they may be."""
    if sys.platform != "linux":
        return f"network namespaces are Linux's (this is {sys.platform})"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return f"making network namespaces needs root (running as uid {os.geteuid()})"
    return None


def ip(*args: str, check: bool = True) -> str:
    """Run `ip *args`; return its output. Raise NamespaceUnavailable or HarnessError on failure."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)  # noqa: S607
    if check and result.returncode != 0:
        message = f"ip {' '.join(args)}: {(result.stderr or result.stdout).strip()}"
        if any(refusal in message for refusal in REFUSALS):
            raise NamespaceUnavailable(message)
        raise HarnessError(message)
    return result.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def links() -> list[str]:
    """Return the names of this namespace's network interfaces."""
    return [
        line.split(":")[1].strip().split("@")[0]
        for line in ip("-o", "link", "show").splitlines()
        if line.strip()
    ]


def remove_stale() -> list[str]:
    """Delete the namespaces, bridges and veths of HostNetworks whose process is gone."""
    removed = []
    for name in links():
        match = LINK_RE.match(name)
        if match and not pid_alive(int(match[1] or match[2], 16)):
            ip("link", "del", name, check=False)
            removed.append(name)
    for name in namespaces():
        match = NAMESPACE_RE.match(name)
        if match and not pid_alive(int(match[1], 16)):
            ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


class HostNetwork:
    """Network namespaces named after `hosts`, joined by a bridge on `subnet`'s first address."""

    def __init__(self, hosts: Sequence[str], *, subnet: str = DEFAULT_SUBNET) -> None:
        self.subnet = ipaddress.ip_network(subnet)
        if self.subnet.version != 4:
            raise HarnessError(f"{subnet}: an IPv4 subnet, please")
        addresses = list(self.subnet.hosts())
        if not 0 < len(hosts) <= min(9, len(addresses) - 1):
            raise HarnessError(f"{len(hosts)} hosts: 1 to 9, and room for them in {subnet}")
        for host in hosts:
            if not re.fullmatch(r"[a-z0-9]{1,8}", host):
                raise HarnessError(f"host {host!r}: 1 to 8 lower-case letters or digits")
        tag = f"{os.getpid():x}"
        self.hosts = list(hosts)
        self.gateway = str(addresses[0])
        self.bridge = f"kwbr{tag}"
        self._addresses = {host: str(addresses[i + 1]) for i, host in enumerate(self.hosts)}
        self._namespaces = {host: f"kwnet-{tag}-{host}" for host in self.hosts}
        self._veths = {host: f"kwve{tag}{i}" for i, host in enumerate(self.hosts)}
        self.created = False

    # One network per process at a time: its names carry the process's id.
    _active: HostNetwork | None = None

    def address(self, host: str) -> str:
        """Return the address of `host` (on its eth0)."""
        return self._addresses[host]

    def namespace(self, host: str) -> str:
        return self._namespaces[host]

    def prefix(self, host: str) -> list[str]:
        """Return the command prefix that runs a command inside `host` (it execs the command)."""
        return ["ip", "netns", "exec", self._namespaces[host]]

    def create(self) -> HostNetwork:
        """Make the bridge and the hosts; on any failure, delete what was made and raise.

        Raises NamespaceUnavailable where namespaces cannot be made here, HarnessError
        where the subnet is already in use or anything else fails.
        """
        reason = unavailable()
        if reason:
            raise NamespaceUnavailable(reason)
        if HostNetwork._active is not None:
            raise HarnessError("one HostNetwork per process at a time: destroy the other first")
        remove_stale()
        for line in ip("-o", "-4", "addr", "show").splitlines():
            interface, address = line.split()[1], line.split()[3]
            if ipaddress.ip_interface(address).network.overlaps(self.subnet):
                raise HarnessError(
                    f"{self.subnet} is already in use here ({address} on {interface}): "
                    "choose another subnet"
                )
        atexit.register(self.destroy)
        self.created = True
        HostNetwork._active = self
        try:
            length = self.subnet.prefixlen
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/{length}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for host in self.hosts:
                namespace, veth = self._namespaces[host], self._veths[host]
                ip("netns", "add", namespace)
                ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
                ip("link", "set", veth, "master", self.bridge, "up")
                ip(
                    "-n",
                    namespace,
                    "addr",
                    "add",
                    f"{self._addresses[host]}/{length}",
                    "dev",
                    "eth0",
                )
                ip("-n", namespace, "link", "set", "eth0", "up")
                ip("-n", namespace, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        """Delete the hosts' veths and namespaces and the bridge; check that none is left.

        Stop the servers inside first: a namespace that a process still uses outlives
        its name until that process ends.
        """
        if not self.created:
            return
        self.created = False
        HostNetwork._active = None
        atexit.unregister(self.destroy)
        for veth in self._veths.values():  # deleting one end deletes both
            ip("link", "del", veth, check=False)
        for namespace in self._namespaces.values():
            ip("netns", "del", namespace, check=False)
        ip("link", "del", self.bridge, check=False)
        ours = {self.bridge, *self._veths.values(), *self._namespaces.values()}
        if not wait_until(lambda: not ours & {*links(), *namespaces()}, 10):
            left = sorted(ours & {*links(), *namespaces()})
            raise HarnessError(f"network namespaces and links left behind: {', '.join(left)}")

    def __enter__(self) -> HostNetwork:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
