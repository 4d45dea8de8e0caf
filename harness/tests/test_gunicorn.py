"""gunicorn through the harness: the repository's configuration, a checked stop, a prefix."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from harness import ROOT, Gunicorn, StartFailed, StopFailed, production_env
from harness.ports import is_listening, is_reserved
from harness.processes import pid_alive

pytestmark = pytest.mark.server


@pytest.fixture
def env(tmp_path):
    return production_env(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")


def test_a_server_answers_and_its_stop_is_clean_and_complete(env):
    server = Gunicorn(env, workers=2).start()
    try:
        assert server.get("/healthz").json() == {"status": "ok"}
        assert ["--config", str(ROOT / "gunicorn.conf.py")] == server.command[3:5]
        workers = server.worker_pids()
        assert len(workers) == 2
        log = server.log_path
        assert is_reserved(server.port)
    finally:
        status = server.stop()
    assert status == 0
    assert not server.running()
    assert not any(pid_alive(pid) for pid in workers)
    assert not is_listening(server.port)
    assert not log.exists()
    assert "Booting worker" in server.output()  # the text outlives the file
    assert not is_reserved(server.port)


def test_a_server_killed_behind_the_harness_is_reported_at_stop(env):
    server = Gunicorn(env).start()
    os.kill(server.pid, signal.SIGKILL)
    # Reported as the status, or as the orphaned worker if it outlives the wait.
    with pytest.raises(StopFailed, match=r"gunicorn exited .*-9"):
        server.stop()
    assert not server.running()


def test_a_server_that_cannot_start_is_reported_with_its_output_and_cleaned_up(env):
    server = Gunicorn({**env, "DJANGO_SETTINGS_MODULE": "no_such_settings_module"})
    with pytest.raises(StartFailed, match=r"(?s)exited with status \d+ at start.*no_such_settings"):
        server.start()
    assert server.log_path is None
    assert not is_reserved(server.port)


def test_a_command_prefix_runs_the_server_through_it_and_the_stop_still_reaches_it(env):
    """The hook a network namespace needs: `ip netns exec NAME` is such a prefix."""
    env["ALLOWED_HOSTS"] = "127.0.0.2"
    server = Gunicorn(env, host="127.0.0.2", command_prefix=["env", "KEYWARD_PREFIXED=yes"])
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.2:")
        assert server.get("/healthz").status == 200
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert b"KEYWARD_PREFIXED=yes" in environ  # the pid is gunicorn's, run through env
    finally:
        assert server.stop() == 0
    assert not is_listening(server.port, "127.0.0.2")
