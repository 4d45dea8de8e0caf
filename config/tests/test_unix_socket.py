"""A real gunicorn bound to a Unix socket, asked over that socket, as behind nginx or Caddy.

With `KEYWARD_TRUSTED_PROXIES=unix` the proxy's X-Forwarded-For names the client,
so allowlists, the invalid-key guard and login throttling work per client;
without it gunicorn says at boot that they cannot (keyward.W010).
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pytest

from harness.base import ROOT as BASE_DIR
from harness.base import wait_until
from harness.commands import manage
from harness.environment import production_env
from harness.servers import Answer

pytestmark = pytest.mark.server

PASSWORD = "correct horse battery staple"


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, as a reverse proxy in front of gunicorn speaks it."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class SocketGunicorn:
    """gunicorn with the project's gunicorn.conf.py, bound to `unix:<path>` only."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.path = str(directory / "keyward.sock")
        self.log_path = directory / "gunicorn.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        command += ["--bind", f"unix:{self.path}", "--workers", "1", "--timeout", "60"]
        command += ["--graceful-timeout", "5", "--no-control-socket"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_until(self._healthy, 40, 0.2):
            output = self.output()
            self.stop()
            raise RuntimeError(f"gunicorn did not start on {self.path}:\n{output}")

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz").status == 200
        except OSError:
            return False

    def request(
        self,
        method: str,
        path: str,
        *,
        forwarded: str | None = None,
        token: str | None = None,
        body: dict | None = None,
        form: dict | None = None,
        cookies: str = "",
    ) -> Answer:
        headers = {"Host": "localhost"}
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookies:
            headers["Cookie"] = cookies
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = UnixConnection(self.path)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            headers_out = {k: v for k, v in response.getheaders() if k.lower() != "set-cookie"}
            headers_out["Set-Cookie"] = "; ".join(response.headers.get_all("Set-Cookie") or [])
            return Answer(response.status, headers_out, response.read(), 0.0)
        finally:
            connection.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def seeded():
    """A migrated SQLite database with one organisation and an admin key; yield (env, token)."""
    directory = Path(tempfile.mkdtemp(prefix="kw_sock_"))
    try:
        # The test settings are the production ones (DEBUG off) with plain static files,
        # so that the login page needs no collectstatic.
        env = production_env(
            DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}",
            DJANGO_SETTINGS_MODULE="config.settings_test",
            KEYWARD_USAGE_FLUSH_SECONDS="0.5",  # last uses are written with the usage batches
        )
        manage(env, "migrate", "--no-input")
        manage(env, "createorg", "sock", "--name", "Sock", "--owner", "owner@example.com")
        token = manage(env, "createapikey", "--org", "sock", "--name", "ops", "--scopes", "admin")
        owner_password = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", _SET_PASSWORD],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert owner_password.returncode == 0, owner_password.stderr
        yield env, token, directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_SET_PASSWORD = (
    "from orgs.models import User; u = User.objects.get(email='owner@example.com'); "
    f"u.set_password({PASSWORD!r}); u.save()"
)


def serve(env: dict[str, str], directory: Path, name: str, **settings: str) -> SocketGunicorn:
    where = directory / name
    where.mkdir(exist_ok=True)
    server = SocketGunicorn({**env, **settings}, where)
    server.start()
    return server


@pytest.fixture(scope="module")
def trusted(seeded):
    env, _, directory = seeded
    server = serve(env, directory, "trusted", KEYWARD_TRUSTED_PROXIES="unix")
    try:
        yield server
    finally:
        server.stop()


def make_key(server: SocketGunicorn, admin: str, **fields) -> tuple[str, str]:
    answer = server.request(
        "POST",
        "/api/v1/keys",
        token=admin,
        body={"name": "client", **fields},
        forwarded="192.0.2.1",
    )
    assert answer.status == 201, answer.body
    body = answer.json()
    return body["key"]["id"], body["token"]


def test_the_forwarded_address_passes_an_allowlist_and_is_recorded(trusted, seeded):
    _, admin, _ = seeded
    key_id, token = make_key(trusted, admin, allowed_ips=["203.0.113.0/24"])
    assert (
        trusted.request("GET", "/api/v1/whoami", token=token, forwarded="203.0.113.5").status == 200
    )
    refused = trusted.request("GET", "/api/v1/whoami", token=token, forwarded="198.51.100.5")
    assert refused.status == 403 and refused.json()["error"]["code"] == "ip_not_allowed"

    # The last use is written with the usage batches, every couple of seconds.
    def recorded() -> bool:
        key = trusted.request("GET", f"/api/v1/keys/{key_id}", token=admin, forwarded="192.0.2.1")
        return key.json()["last_used_ip"] == "203.0.113.5"

    assert wait_until(recorded, 15, 0.5)


def test_an_allow_everything_list_admits_forwarded_clients(trusted, seeded):
    _, admin, _ = seeded
    _, token = make_key(trusted, admin, allowed_ips=["0.0.0.0/0"])
    assert (
        trusted.request("GET", "/api/v1/whoami", token=token, forwarded="198.51.100.77").status
        == 200
    )


def test_the_invalid_key_guard_answers_429_per_forwarded_address(trusted, seeded):
    _, admin, _ = seeded
    wrong = admin[:-8] + ("A" if admin[-8] != "A" else "B") + admin[-7:]
    codes = [
        trusted.request("GET", "/api/v1/whoami", token=wrong, forwarded="203.0.113.66").status
        for _ in range(21)
    ]
    assert set(codes[:20]) == {401} and codes[20] == 429
    other = trusted.request("GET", "/api/v1/whoami", token=wrong, forwarded="203.0.113.67")
    assert other.status == 401


def _log_in(server: SocketGunicorn, password: str, forwarded: str) -> Answer:
    page = server.request("GET", "/accounts/login/", forwarded=forwarded)
    csrf = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"]).group(1)
    field = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
    return server.request(
        "POST",
        "/accounts/login/",
        forwarded=forwarded,
        cookies=f"csrftoken={csrf}",
        form={
            "csrfmiddlewaretoken": field.decode(),
            "username": "owner@example.com",
            "password": password,
        },
    )


def test_login_throttling_counts_per_forwarded_address(trusted):
    for _ in range(10):
        assert _log_in(trusted, "wrong password", "198.51.100.20").status == 200
    locked = _log_in(trusted, PASSWORD, "198.51.100.20")
    assert locked.status == 200 and b"Too many failed attempts" in locked.body
    assert _log_in(trusted, PASSWORD, "198.51.100.21").status == 302


def test_without_trust_gunicorn_warns_at_boot_and_per_address_defences_are_off(seeded):
    env, admin, directory = seeded
    server = serve(env, directory, "untrusted", KEYWARD_TRUSTED_PROXIES="")
    try:
        assert "keyward.W010" in server.output()
        answer = server.request("GET", "/api/v1/whoami", token=admin, forwarded="203.0.113.5")
        assert answer.status == 200  # the key has no allowlist: it still works
        _, token = make_key(server, admin, allowed_ips=["0.0.0.0/0"])
        refused = server.request("GET", "/api/v1/whoami", token=token, forwarded="203.0.113.5")
        assert refused.status == 403  # no address to check: the warning said so
    finally:
        server.stop()


def test_with_trust_gunicorn_boots_without_the_warning(trusted):
    assert "keyward.W010" not in trusted.output()
