"""Hosts in network namespaces: they reach servers on the gateway, and nothing is left after."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from harness import HostNetwork, NamespaceUnavailable, ThrowawayPostgres, ThrowawayRedis, netns
from harness.processes import pid_alive

pytestmark = pytest.mark.server

# Run inside a host: PING the Redis at argv[1]:argv[2], print the answer.
PING = (
    "import socket, sys; c = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5); "
    "c.sendall(b'PING\\r\\n'); print(c.recv(64).decode().strip())"
)
SELECT = (
    "import psycopg, sys; print(psycopg.connect(sys.argv[1]).execute('SELECT 7').fetchone()[0])"
)


@pytest.fixture
def needs_namespaces(needs_postgres, needs_redis) -> None:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)


def inside(network: HostNetwork, host: str, *command: str) -> str:
    return subprocess.run(
        [*network.prefix(host), *command], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


@pytest.mark.usefixtures("needs_namespaces")
def test_hosts_reach_postgres_and_redis_on_the_gateway_and_nothing_is_left_after():
    with (
        HostNetwork(["a", "b"], subnet="10.209.0.0/24") as network,
        ThrowawayRedis(host=network.gateway) as redis,
        ThrowawayPostgres(host=network.gateway, clients=[str(network.subnet)]) as cluster,
    ):
        addresses = [network.gateway, *(network.address(host) for host in network.hosts)]
        assert addresses == ["10.209.0.1", "10.209.0.2", "10.209.0.3"]
        eth0 = inside(network, "a", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
        assert eth0.split()[3] == "10.209.0.2/24"
        for host in network.hosts:
            answer = inside(network, host, sys.executable, "-c", PING, redis.host, str(redis.port))
            assert answer == "+PONG"
        assert inside(network, "b", sys.executable, "-c", SELECT, cluster.url) == "7"
        with psycopg.connect(cluster.url) as connection:  # and from here, on the bridge
            assert connection.execute("SELECT 1").fetchone() == (1,)
        made = {network.bridge, *network._veths.values(), *network._namespaces.values()}
        assert made <= {*netns.links(), *netns.namespaces()}
    assert not made & {*netns.links(), *netns.namespaces()}


@pytest.mark.usefixtures("needs_namespaces")
def test_what_a_dead_run_left_is_removed_by_the_next():
    finished = subprocess.Popen(["true"])
    finished.wait()
    assert not pid_alive(finished.pid)
    stale = f"kwnet-{finished.pid:x}-a"
    netns.ip("netns", "add", stale)
    try:
        with HostNetwork(["a"], subnet="10.209.1.0/24"):
            assert stale not in netns.namespaces()
    finally:
        netns.ip("netns", "del", stale, check=False)


def test_without_root_the_network_says_why_and_makes_nothing(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert "needs root" in netns.unavailable()
    with pytest.raises(NamespaceUnavailable, match="needs root"):
        HostNetwork(["a"]).create()
