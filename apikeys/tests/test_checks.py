import os
import subprocess
import sys

from django.core.checks import run_checks
from django.test import override_settings


def ids(errors):
    return {error.id for error in errors}


@override_settings(KEYWARD_PEPPER="short")
def test_deploy_check_refuses_a_weak_pepper():
    assert "keyward.E001" in ids(run_checks(include_deployment_checks=True))


@override_settings(KEYWARD_PEPPER="x" * 48)
def test_deploy_check_accepts_a_strong_pepper():
    assert "keyward.E001" not in ids(run_checks(include_deployment_checks=True))


@override_settings(KEYWARD_TOKEN_BRAND="Not-A-Brand")
def test_a_malformed_brand_is_an_error():
    assert "keyward.E003" in ids(run_checks())


def test_production_refuses_to_start_without_a_pepper():
    env = {k: v for k, v in os.environ.items() if k != "KEYWARD_PEPPER"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="s" * 50,
        ALLOWED_HOSTS="example.com",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "KEYWARD_PEPPER is not set" in result.stderr


def test_check_deploy_is_clean():
    relaxed_for_tests = {"SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"}
    env = {k: v for k, v in os.environ.items() if k not in relaxed_for_tests}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="a-long-random-secret-key-for-this-test-only-0123456789",
        KEYWARD_PEPPER="a-long-random-pepper-for-this-test-only-0123456789",
        ALLOWED_HOSTS="keyward.example.com",
    )
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("?: (")]
    # W021 (HSTS preload) is silenced in settings while SECURE_HSTS_PRELOAD is off.
    assert warnings == []


@override_settings(
    KEYWARD_SCOPES={
        "bots:read": "Read bots.",
        "widget": {"description": "A widget.", "public": True},
    }
)
def test_a_scope_may_be_a_description_or_marked_public():
    assert not {"keyward.E004", "keyward.E005"} & ids(run_checks())


@override_settings(KEYWARD_SCOPES={"widget": {"description": "x", "public": "yes"}})
def test_a_malformed_scope_entry_is_an_error():
    assert "keyward.E005" in ids(run_checks())


@override_settings(KEYWARD_SCOPES={"admin": {"description": "All.", "public": True}})
def test_the_admin_scope_cannot_be_public():
    assert "keyward.E005" in ids(run_checks())


@override_settings(KEYWARD_RESOURCE_TYPES={"bots": "no.such.module.bots_of"})
def test_a_resource_type_that_cannot_be_imported_is_an_error():
    assert "keyward.E006" in ids(run_checks())


@override_settings(KEYWARD_RESOURCE_TYPES={"Bad Name": "apikeys.tests.kinds_urls.things_of"})
def test_a_malformed_resource_type_name_is_an_error():
    assert "keyward.E006" in ids(run_checks())


@override_settings(KEYWARD_RESOURCE_TYPES={"things": "apikeys.tests.kinds_urls.things_of"})
def test_a_registered_resource_type_passes():
    assert "keyward.E006" not in ids(run_checks())
