"""Throwaway Redis servers: killed and started again on their port, every stop checked."""

from __future__ import annotations

import os
import signal

import pytest

from harness import StopFailed, ThrowawayRedis
from harness.ports import is_listening, is_reserved
from harness.processes import pid_alive
from harness.redis_server import ping

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("needs_redis")]


def test_a_killed_server_comes_back_on_its_port_and_stops_cleanly():
    with ThrowawayRedis() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert ping(server.port)
        first = server.pid
        server.kill()
        assert not pid_alive(first)
        assert not is_listening(server.port)
        assert is_reserved(server.port)  # still the server's while it is down
        server.start()
        assert ping(server.port)
        server.stop()
        assert not server.running()
        assert not is_listening(server.port)
    assert not is_reserved(server.port)  # released by destroy()


def test_a_server_that_died_unexpectedly_is_reported_at_stop():
    server = ThrowawayRedis().start()
    try:
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(StopFailed, match="exit status -9, not 0"):
            server.stop()
    finally:
        server.destroy()


def test_a_server_on_another_address_listens_there_only():
    with ThrowawayRedis(host="127.0.0.2") as server:
        assert server.url == f"redis://127.0.0.2:{server.port}/0"
        assert ping(server.port, "127.0.0.2")
        assert not is_listening(server.port, "127.0.0.1")
        assert "--protected-mode" in server.command  # loopback: left on
        assert server.command[server.command.index("--protected-mode") + 1] == "yes"
    assert not is_listening(server.port, "127.0.0.2")
