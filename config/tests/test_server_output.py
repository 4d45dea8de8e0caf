"""What the server prints: no email backend that prints links, no token in the access log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.base import ROOT as BASE_DIR
from harness.commands import manage
from harness.environment import production_env
from harness.servers import Gunicorn

pytestmark = pytest.mark.server

CONSOLE = "django.core.mail.backends.console.EmailBackend"


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def directory():
    path = Path(tempfile.mkdtemp(prefix="kw_out_"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def env_for(directory: Path, **overrides: str) -> dict[str, str]:
    return production_env(DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}", **overrides)


# The console email backend in production


def test_production_does_not_default_to_printing_email(directory):
    shown = run_manage(
        env_for(directory),
        "shell",
        "-c",
        "from django.conf import settings; print(settings.EMAIL_BACKEND)",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize("backend", [CONSOLE, "django.core.mail.backends.filebased.EmailBackend"])
def test_production_refuses_a_printing_email_backend(directory, backend):
    result = run_manage(env_for(directory, EMAIL_BACKEND=backend), "check")
    assert result.returncode != 0
    assert "keyward.E011" in result.stderr


def test_the_console_backend_is_allowed_when_asked_for_explicitly(directory):
    env = env_for(directory, EMAIL_BACKEND=CONSOLE, KEYWARD_ALLOW_CONSOLE_EMAIL="1")
    result = run_manage(env, "check")
    assert result.returncode == 0, result.stderr
    assert "keyward.E011" not in result.stderr + result.stdout


def test_a_laptop_with_debug_keeps_the_console(directory):
    env = env_for(directory, DEBUG="1", EMAIL_BACKEND=CONSOLE)
    result = run_manage(env, "check")
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_to_serve_with_the_console_backend(directory):
    """gunicorn runs no system checks of its own: each worker runs ours as it boots."""
    env = env_for(directory, EMAIL_BACKEND=CONSOLE)
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    command += ["--bind", f"unix:{directory / 'refused.sock'}", "--workers", "1"]
    result = subprocess.run(
        command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "keyward.E011" in output and "Worker failed to boot" in output


# The access log


@pytest.fixture(scope="module")
def logged_server(directory):
    """gunicorn with its access log on, and a token of a real key; yield (server, token)."""
    env = env_for(directory, GUNICORN_CMD_ARGS="--access-logfile -")
    manage(env, "migrate", "--no-input")
    manage(env, "createorg", "logs", "--name", "Logs", "--owner", "ops@example.com")
    token = manage(env, "createapikey", "--org", "logs", "--name", "ops", "--scopes", "keys:read")
    server = Gunicorn(env=env)
    server.start()
    try:
        yield server, token
    finally:
        server.stop()


def send(server: Gunicorn, path: str, **headers: str) -> int:
    request = urllib.request.Request(server.url + path, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_access_log_holds_no_token(logged_server):
    server, token = logged_server
    key_id = token.split("_")[2]
    escaped = token.replace("_", "%5F")
    assert send(server, f"/api/v1/whoami?token={token}") == 400  # key_in_url
    assert send(server, f"/api/v1/keys/{token}", Authorization=f"Bearer {token}") == 404
    assert send(server, f"/healthz?next=/x%3Ftoken%3D{escaped}") == 200
    assert send(server, "/healthz", Referer=f"https://example.com/?t={token}") == 200
    assert send(server, "/healthz", **{"User-Agent": f"curl/8 {token}"}) == 200
    output = server.output()
    access = [line for line in output.splitlines() if '"GET ' in line]
    assert len(access) >= 5, output  # the access log is on, and these requests are in it
    secret = token[len(f"kw_live_{key_id}_") :]
    assert secret not in output and secret[:10] not in output
    assert f"kw_live_{key_id}_…" in output  # the public prefix stays, to find the key
