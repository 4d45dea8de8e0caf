"""Throwaway PostgreSQL clusters (initdb into a temporary directory) and bench databases.

A throwaway cluster listens on one address (127.0.0.1 unless `host` says
otherwise), on a port reserved for it until `destroy()`: a stop and start in the
middle (a fault test) keep the port, and no other run of the harness can bind it
meanwhile. Every `pg_ctl` call is checked:
a failing start or stop raises with pg_ctl's output and the server's log, and a
stop also checks that the postmaster is gone and the port closed.

Run as root, the cluster's programs run as the `postgres` user (`runuser`):
initdb and postgres refuse to run as root.

A cluster on another address (`host`, e.g. a bridge that network namespaces reach)
trusts the client networks in `clients` as well as loopback: a throwaway cluster
holds nothing worth a password.
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.base import HarnessError, StartFailed, StopFailed, wait_until
from harness.environment import admin_url
from harness.ports import Port, is_listening, reserve_port
from harness.processes import pid_alive

# A throwaway cluster needs no durability: without fsync a shutdown checkpoint or a
# migration never waits for a disk that other work on the machine keeps busy.
# listen_addresses is the cluster's `host`.
THROWAWAY_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def postgres_bin() -> Path | None:
    """Return the directory of PostgreSQL's server programs (initdb, pg_ctl), if installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on a reserved port, trusting local users.

    with ThrowawayPostgres() as cluster:  # create() … destroy()
        url = cluster.url                 # postgres://postgres@127.0.0.1:<port>/keyward
        cluster.stop("fast"); cluster.start()

    `host` is the one address it listens on; `clients` are networks (CIDR) it trusts
    besides loopback, e.g. `ThrowawayPostgres(host="10.201.0.1", clients=["10.201.0.0/24"])`
    for servers in network namespaces behind a bridge.
    """

    def __init__(
        self,
        *,
        port: Port | int | None = None,
        database: str = "keyward",
        bin_dir: Path | None = None,
        timeout: float = 120,
        host: str = "127.0.0.1",
        clients: Sequence[str] = (),
    ) -> None:
        self.host = str(ipaddress.ip_address(host))
        self.clients = [str(ipaddress.ip_network(cidr)) for cidr in clients]
        self.bin_dir = bin_dir or postgres_bin()
        if self.bin_dir is None:
            raise HarnessError("PostgreSQL's initdb was not found")
        self._port = port
        self.database = database
        self.timeout = timeout
        self.directory: Path | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the cluster has no port before create()")
        return int(self._port)

    @property
    def url(self) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        if self.directory is None:
            raise RuntimeError("the cluster was not created")
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.data.parent / "log"

    def _as_postgres(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, program: str, *args: str, failure: type[HarnessError] = HarnessError) -> str:
        """Run one of PostgreSQL's programs; raise `failure` with its output if it fails."""
        command = self._as_postgres(str(self.bin_dir / program), *args)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout + 30
            )
        except subprocess.TimeoutExpired as error:
            raise failure(f"{program} {' '.join(args)} did not finish: {error}") from None
        if result.returncode != 0:
            raise failure(
                f"{program} {' '.join(args)} exited with status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n--- server log ---\n{self.server_log()}"
            )
        return result.stdout

    def server_log(self, lines: int = 60) -> str:
        """Return the end of the server's log."""
        try:
            text = self.log.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def create(self) -> ThrowawayPostgres:
        """initdb a new cluster, start it, and create the database; return self."""
        if self._port is None:
            self._port = reserve_port()
        self.directory = Path(tempfile.mkdtemp(prefix="kw_harness_pg_"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N")
            if self.clients:
                with (self.data / "pg_hba.conf").open("a") as rules:
                    rules.writelines(f"host all all {cidr} trust\n" for cidr in self.clients)
            self.start()
            self._run(
                "createdb",
                *("-h", self.host, "-p", str(self.port), "-U", "postgres", self.database),
            )
        except BaseException:
            self.destroy()
            raise
        return self

    def postmaster_pid(self) -> int | None:
        """Return the pid in postmaster.pid, or None when there is no such file."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and pid_alive(pid)

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections (pg_ctl -w)."""
        settings = {"listen_addresses": self.host, **THROWAWAY_SETTINGS}
        options = f"-p {self.port} -k {self.directory}" + "".join(
            f" -c {name}={value}" for name, value in settings.items()
        )
        self._run(
            "pg_ctl",
            *("-D", str(self.data), "-o", options, "-l", str(self.log)),
            *("-w", "-t", f"{self.timeout:.0f}", "start"),
            failure=StartFailed,
        )
        if not is_listening(self.port, self.host):
            raise StartFailed(f"PostgreSQL started but {self.host}:{self.port} does not answer")

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (pg_ctl -m `mode`) and check that it is really down.

        Raises StopFailed if pg_ctl fails, the postmaster survives, or the port
        still answers.
        """
        pid = self.postmaster_pid()
        self._run(
            "pg_ctl",
            *("-D", str(self.data), "-m", mode, "-w", "-t", f"{self.timeout:.0f}", "stop"),
            failure=StopFailed,
        )
        if pid is not None and not wait_until(lambda: not pid_alive(pid), 10):
            raise StopFailed(f"pg_ctl stopped, but the postmaster {pid} still runs")
        if not wait_until(lambda: not is_listening(self.port, self.host, timeout=0.5), 10):
            raise StopFailed(f"PostgreSQL stopped, but {self.host}:{self.port} still answers")

    def destroy(self) -> None:
        """Stop the cluster if it runs, delete its directory and release its port.

        A failed stop is still raised, after the postmaster is killed and the
        directory deleted.
        """
        failure: StopFailed | None = None
        try:
            if self.directory is not None and self.running():
                try:
                    self.stop("immediate")
                except StopFailed as error:
                    failure = error
                    pid = self.postmaster_pid()
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        wait_until(lambda: not pid_alive(pid), 10)
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None
            if isinstance(self._port, Port):
                self._port.release()
        if failure is not None:
            raise failure

    def __enter__(self) -> ThrowawayPostgres:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


# --- databases on a running PostgreSQL server (the shared one, for benchmarks) -----------


def _refuse_foreign(name: str) -> None:
    if not name.startswith("kw_"):
        raise HarnessError(f"refusing to drop {name!r}: the harness's databases start with kw_")


def drop_database(name: str, server_url: str | None = None) -> None:
    """Drop database `name` (closing its sessions) if it exists; kw_ databases only."""
    import psycopg
    from psycopg import sql

    _refuse_foreign(name)
    with psycopg.connect(server_url or admin_url(), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def recreate_database(name: str, server_url: str | None = None) -> None:
    """Drop (closing its sessions) and create database `name`; kw_ databases only."""
    import psycopg
    from psycopg import sql

    drop_database(name, server_url)
    with psycopg.connect(server_url or admin_url(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_database(url: str) -> None:
    """Create the database `url` names, on its server, if it does not exist."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
