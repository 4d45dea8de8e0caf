"""Throwaway PostgreSQL clusters: a stop is checked, the port is theirs until destroyed."""

from __future__ import annotations

import os
import signal
import socket
import struct

import psycopg
import pytest

from harness import StopFailed, ThrowawayPostgres, wait_until
from harness.ports import is_listening, is_reserved
from harness.processes import pid_alive

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("needs_postgres")]


def test_a_cluster_stops_and_starts_on_a_port_no_one_else_gets_meanwhile():
    with ThrowawayPostgres() as cluster:
        directory = cluster.directory
        with psycopg.connect(cluster.url) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == ("keyward",)
        postmaster = cluster.postmaster_pid()
        cluster.stop("fast")
        assert not cluster.running()
        assert not pid_alive(postmaster)
        assert not is_listening(cluster.port)
        assert is_reserved(cluster.port)  # still the cluster's while it is down
        cluster.start()
        with psycopg.connect(cluster.url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    assert not directory.exists()
    assert not is_listening(cluster.port)
    assert not is_reserved(cluster.port)  # released by destroy()


def test_a_stop_that_fails_is_reported_with_pg_ctls_words():
    with ThrowawayPostgres() as cluster:
        postmaster = cluster.postmaster_pid()
        os.kill(postmaster, signal.SIGKILL)  # dies behind the harness's back
        assert wait_until(lambda: not cluster.running(), 10)
        with pytest.raises(StopFailed, match=r"pg_ctl .*stop exited with status 1"):
            cluster.stop("fast")


def authenticated_from(source: str, host: str, port: int) -> bool:
    """Send a startup message from address `source`; return whether the server lets us in."""
    options = b"user\0postgres\0database\0keyward\0\0"
    with socket.socket() as connection:
        connection.bind((source, 0))
        connection.settimeout(10)
        connection.connect((host, port))
        connection.sendall(struct.pack("!ii", 8 + len(options), 196608) + options)
        kind, _, code = struct.unpack("!cii", connection.recv(9))
    return kind == b"R" and code == 0  # AuthenticationOk; an error ("no pg_hba.conf entry") is E


def test_a_cluster_on_another_address_listens_there_and_trusts_its_clients():
    with ThrowawayPostgres(host="127.0.0.2", clients=["127.0.0.3/32"]) as cluster:
        assert cluster.url == f"postgres://postgres@127.0.0.2:{cluster.port}/keyward"
        with psycopg.connect(cluster.url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        assert not is_listening(cluster.port, "127.0.0.1")
        assert authenticated_from("127.0.0.3", "127.0.0.2", cluster.port)
        assert not authenticated_from("127.0.0.4", "127.0.0.2", cluster.port)
        cluster.stop("fast")
        assert not is_listening(cluster.port, "127.0.0.2")
