"""Free ports: one in use, bound or reserved elsewhere is never handed out."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from harness import ROOT, HarnessError, NoFreePort, reserve_port
from harness.ports import configured_ports, is_bindable, is_listening


@pytest.fixture
def spare():
    """Return a port number reserved for the test and released: free right now."""
    port = reserve_port()
    port.release()
    return port.number


def test_two_reservations_are_two_different_free_ports():
    with reserve_port() as one, reserve_port() as two:
        assert one.number != two.number
        for port in (one, two):
            assert is_bindable(port.number)
            assert not is_listening(port.number)


def test_a_port_something_listens_on_is_not_handed_out(spare):
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", spare))
        server.listen()
        with pytest.raises(NoFreePort):
            reserve_port(range(spare, spare + 1))
    with reserve_port(range(spare, spare + 1)) as port:  # free again once closed
        assert port.number == spare


def test_a_port_bound_without_listening_is_not_handed_out(spare):
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", spare))  # a server between bind() and listen()
        with pytest.raises(NoFreePort):
            reserve_port(range(spare, spare + 1))


def test_a_port_reserved_by_another_process_is_not_handed_out_until_it_ends():
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from harness.ports import reserve_port\n"
            "port = reserve_port()\n"
            "print(port.number, flush=True)\n"
            "input()\n",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        held = int(holder.stdout.readline())
        assert is_bindable(held)  # nothing binds it: only the reservation keeps it
        with pytest.raises(NoFreePort):
            reserve_port(range(held, held + 1))
    finally:
        holder.communicate("\n", timeout=10)
    with reserve_port(range(held, held + 1)) as port:  # the holder's end released it
        assert port.number == held


def test_a_released_port_can_be_reserved_again_and_a_reserved_one_cannot(spare):
    first = reserve_port(range(spare, spare + 1))
    with pytest.raises(NoFreePort):
        reserve_port(range(spare, spare + 1))
    first.release()
    first.release()  # twice is harmless
    assert not first.reserved
    with reserve_port(range(spare, spare + 1)) as again:
        assert again.number == spare


def test_the_range_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("KEYWARD_HARNESS_PORTS", "21000-21009")
    assert configured_ports() == range(21000, 21010)
    monkeypatch.delenv("KEYWARD_HARNESS_PORTS")
    assert configured_ports() == range(19000, 20000)  # below the ephemeral range


@pytest.mark.parametrize("value", ["21000-", "ports", "80-90", "21010-21000", "60000-70000"])
def test_a_bad_range_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("KEYWARD_HARNESS_PORTS", value)
    with pytest.raises(HarnessError, match="KEYWARD_HARNESS_PORTS"):
        configured_ports()
