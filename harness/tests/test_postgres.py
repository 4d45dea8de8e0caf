"""Throwaway PostgreSQL clusters: a stop is checked, the port is theirs until destroyed."""

from __future__ import annotations

import os
import signal

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
