"""The bounded load run, bench/load.py, shortened to 8 seconds: gunicorn, PostgreSQL, Redis, wrk.

It runs in a database of its own (created by the script, dropped here), not in
the test database, because gunicorn's workers must see the keys it prepares.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from django.db import connection

from conftest import on_postgres
from harness import ROOT, database_name
from harness.postgres import drop_database

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def _postgres_only():
    if not on_postgres():
        pytest.skip("the load run needs PostgreSQL: gunicorn's workers share its database")


@pytest.fixture
def wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail("wrk is required here and not installed (apt-get install -y wrk)")
        pytest.skip("wrk is not installed")
    return found


@pytest.fixture
def load_database_url():
    """Return the URL of a database for the run, next to the test database; drop it after."""
    db = connection.settings_dict
    name = f"{database_name('load_test')}_{os.getpid()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    server = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    yield f"{server}/{name}"
    drop_database(name, f"{server}/postgres")


def test_an_8_second_load_run_has_no_5xx_no_wrong_answer_and_loses_no_count(
    wrk, redis_url, load_database_url
):
    result = subprocess.run(
        [
            sys.executable,
            "bench/load.py",
            "--duration",
            "8",
            "--database-url",
            load_database_url,
            "--redis-url",
            redis_url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "5xx seen: 0" in result.stdout
    assert "wrong answers: 0" in result.stdout
    limited = next(line for line in result.stdout.splitlines() if "limited /api/v1/whoami" in line)
    assert "429-rate:" in limited  # the 10/s key was refused over its limit
    assert "MISMATCH" not in result.stdout
