"""Gunicorn settings for the benchmarks: loopback only, quiet, counters written on exit."""

import json
import os
from pathlib import Path

worker_class = "sync"
accesslog = None
errorlog = "-"
loglevel = "warning"
graceful_timeout = 10
keepalive = 5


def worker_exit(server, worker):
    """Write this worker's per-path query counters where bench/run.py collects them."""
    directory = os.environ.get("BENCH_STATS_DIR")
    if not directory:
        return
    from bench.middleware import totals

    Path(directory, f"{worker.pid}.json").write_text(json.dumps(dict(totals)))
