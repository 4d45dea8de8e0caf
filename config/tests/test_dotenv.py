"""`make run`'s `.env`: manage.py works in the checkout without exports; production refuses it.

Each test works in a copy of the project in a temporary directory, runs the Makefile's
`.env` step there, and starts manage.py with a clean environment (nothing but PATH and
HOME), the way a person types commands in a fresh terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
NOT_COPIED = (
    ".git", ".venv", "venv", "__pycache__", "node_modules", "*.sqlite3", "*.sqlite3-journal",
    ".env", "test-output", "staticfiles", ".hypothesis", ".pytest_cache", ".ruff_cache",
    ".import_linter_cache",
)  # fmt: skip


@pytest.fixture(scope="module")
def make():
    found = shutil.which("make")
    if found is None:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail("make is required here and was not found.")
        pytest.skip("make is not installed")
    return found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """Return a copy of the project, with no `.env` and no database."""
    root = tmp_path_factory.mktemp("checkout") / "keyward"
    shutil.copytree(BASE_DIR, root, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    return root


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.pathsep.join(os.get_exec_path()), "HOME": str(home), **extra}


def manage(checkout: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=checkout,
        env=clean_env(checkout.parent, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_dotenv(make: str, checkout: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [make, "--no-print-directory", ".env"],
        cwd=checkout,
        env=clean_env(checkout.parent),
        capture_output=True,
        text=True,
        timeout=60,
    )


def dotenv_values(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_production_settings_refuse_to_load_without_a_secret_key(checkout):
    # KEYWARD_ENV_FILE="" stands for a checkout where `make run` never ran: no .env.
    result = manage(checkout, "check", DEBUG="0", KEYWARD_PEPPER="p" * 48, KEYWARD_ENV_FILE="")
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set SECRET_KEY" in result.stderr


def test_make_writes_a_dotenv_of_this_checkouts_own_once(make, checkout):
    first = write_dotenv(make, checkout)
    assert first.returncode == 0, first.stderr
    dotenv = checkout / ".env"
    values = dotenv_values(dotenv)
    assert values["DEBUG"] == "1"
    assert len(values["SECRET_KEY"]) >= 50 and len(values["KEYWARD_PEPPER"]) >= 48
    assert values["SECRET_KEY"] != values["KEYWARD_PEPPER"]
    assert dotenv.stat().st_mode & 0o077 == 0  # its owner alone may read the secrets
    written = dotenv.read_text()

    again = write_dotenv(make, checkout)
    assert again.returncode == 0, again.stderr
    assert dotenv.read_text() == written  # an existing .env is never replaced


def test_manage_py_works_in_the_checkout_without_exports(make, checkout):
    assert write_dotenv(make, checkout).returncode == 0
    for command in (["migrate", "--no-input", "-v", "0"], ["seeddemo"]):
        result = manage(checkout, *command)
        assert result.returncode == 0, result.stderr

    created = manage(checkout, "createapikey", "--org", "demo", "--name", "tour key")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("kw_live_")

    listed = manage(checkout, "listapikeys", "--org", "demo")
    assert listed.returncode == 0, listed.stderr
    assert "tour key" in listed.stdout
    assert token[: len("kw_live_") + 12] in listed.stdout
    assert token not in listed.stdout + listed.stderr


def test_production_refuses_the_dotenv_secrets(make, checkout):
    assert write_dotenv(make, checkout).returncode == 0

    with_dev_secret_key = manage(checkout, "check", DEBUG="0")
    assert with_dev_secret_key.returncode != 0
    assert "SECRET_KEY is a development value" in with_dev_secret_key.stderr

    with_dev_pepper = manage(checkout, "check", DEBUG="0", SECRET_KEY="s" * 50)
    assert with_dev_pepper.returncode != 0
    assert "KEYWARD_PEPPER is a development value" in with_dev_pepper.stderr

    with_real_secrets = manage(
        checkout, "check", DEBUG="0", SECRET_KEY="s" * 50, KEYWARD_PEPPER="p" * 48
    )
    assert with_real_secrets.returncode == 0, with_real_secrets.stderr
