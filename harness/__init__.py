"""The process harness of the tests and benchmarks: ports, environments, servers, clusters.

Plain Python, no Django and no pytest, so that the test suite, `bench/` and the
load run all start their processes one way; it imports nothing of Keyward's.

- `ports`: free ports, reserved across concurrent runs on one machine;
- `environment`: the one production-like environment, and the database names and
  Redis URLs that parallel runs can move apart;
- `commands`: `manage.py` commands, checked;
- `servers`: gunicorn (always with the repository's gunicorn.conf.py) and runserver,
  each in its own session;
- `postgres`: throwaway PostgreSQL clusters, and kw_ databases on a shared server;
- `redis_server`: throwaway Redis servers;
- `netns`: hosts of their own on one machine, network namespaces behind a bridge.

Every server is stopped with a signal, waited for, and checked (exit status,
process gone, port closed); a stop that fails raises StopFailed.
"""

from harness.base import ROOT, HarnessError, StartFailed, StopFailed, wait_until
from harness.commands import CommandFailed, manage
from harness.environment import bench_env, database_name, database_url, production_env, redis_url
from harness.netns import HostNetwork, NamespaceUnavailable
from harness.ports import NoFreePort, Port, reserve_port
from harness.postgres import ThrowawayPostgres, postgres_bin
from harness.redis_server import ThrowawayRedis, redis_server
from harness.servers import Answer, Gunicorn, HttpServer, Runserver

__all__ = [
    "ROOT",
    "Answer",
    "CommandFailed",
    "Gunicorn",
    "HarnessError",
    "HostNetwork",
    "HttpServer",
    "NamespaceUnavailable",
    "NoFreePort",
    "Port",
    "Runserver",
    "StartFailed",
    "StopFailed",
    "ThrowawayPostgres",
    "ThrowawayRedis",
    "bench_env",
    "database_name",
    "database_url",
    "manage",
    "postgres_bin",
    "production_env",
    "redis_server",
    "redis_url",
    "reserve_port",
    "wait_until",
]
