"""The one production-like environment, and the names parallel runs keep apart by."""

from __future__ import annotations

import pytest

from harness import HarnessError, database_name, manage, production_env, redis_url
from harness.commands import CommandFailed


def test_nothing_of_the_callers_settings_leaks_into_a_production_process(monkeypatch):
    for name, value in {
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/the_test_database",
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "KEYWARD_USAGE_FLUSH_SECONDS": "0",
        "DATABASE_POOL_MAX": "20",
        "SECRET_KEY": "the-test-suites-secret",
        "KEYWARD_PEPPER": "the-test-suites-pepper",
    }.items():
        monkeypatch.setenv(name, value)
    env = production_env()
    assert env["DJANGO_SETTINGS_MODULE"] == "config.settings"
    assert env["DEBUG"] == "0"
    for name in ("DATABASE_URL", "REDIS_URL", "KEYWARD_USAGE_FLUSH_SECONDS", "DATABASE_POOL_MAX"):
        assert name not in env
    assert env["SECRET_KEY"] != "the-test-suites-secret"
    assert len(env["KEYWARD_PEPPER"]) >= 32
    assert env["PATH"]  # the system's variables do come along


def test_each_environment_has_secrets_of_its_own():
    one, two = production_env(), production_env()
    assert one["SECRET_KEY"] != two["SECRET_KEY"]
    assert one["KEYWARD_PEPPER"] != two["KEYWARD_PEPPER"]
    assert "KEYWARD_PEPPER" not in production_env(fresh_secrets=False)


def test_plain_http_on_loopback_unless_production_as_deployed_is_asked_for():
    relaxed = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    assert {name: production_env()[name] for name in relaxed} == dict.fromkeys(relaxed, "false")
    assert not set(relaxed) & set(production_env(plain_http=False))


def test_urls_and_overrides_are_set_as_given():
    env = production_env(
        settings="bench.settings",
        database_url="postgres://postgres@127.0.0.1:5432/kw_x",
        redis_url="redis://127.0.0.1:6379/9",
        DEBUG="1",
    )
    assert env["DJANGO_SETTINGS_MODULE"] == "bench.settings"
    assert env["DATABASE_URL"] == "postgres://postgres@127.0.0.1:5432/kw_x"
    assert env["REDIS_URL"] == "redis://127.0.0.1:6379/9"
    assert env["DEBUG"] == "1"  # overrides come last


def test_production_settings_load_in_that_environment(tmp_path):
    """The settings module accepts it: DEBUG off, secrets present, no test setting needed."""
    env = production_env(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert "no issues" in manage(env, "check")


def test_database_names_and_redis_urls_default_as_before_and_move_by_environment(monkeypatch):
    for purpose in (
        "DATABASE_PREFIX",
        "BENCH_REDIS_URL",
        "MULTIPROCESS_REDIS_URL",
        "LOAD_REDIS_URL",
    ):
        monkeypatch.delenv(f"KEYWARD_{purpose}", raising=False)
    assert database_name("bench") == "kw_bench"
    assert redis_url("bench") == "redis://127.0.0.1:6379/11"
    assert redis_url("multiprocess") == "redis://127.0.0.1:6379/12"
    assert redis_url("load") == "redis://127.0.0.1:6379/15"
    monkeypatch.setenv("KEYWARD_DATABASE_PREFIX", "kw_alice")
    monkeypatch.setenv("KEYWARD_BENCH_REDIS_URL", "redis://127.0.0.1:6380/4")
    assert database_name("bench") == "kw_alice_bench"
    assert redis_url("bench") == "redis://127.0.0.1:6380/4"


@pytest.mark.parametrize("prefix", ["postgres", "kw-x", "kw_X", "kwx"])
def test_a_database_prefix_that_could_name_someone_elses_database_is_refused(monkeypatch, prefix):
    monkeypatch.setenv("KEYWARD_DATABASE_PREFIX", prefix)
    with pytest.raises(HarnessError, match="KEYWARD_DATABASE_PREFIX"):
        database_name("bench")


def test_a_failing_command_is_reported_with_its_status_and_output():
    with pytest.raises(CommandFailed, match=r"exited with status \d+:[\s\S]*no_such_command"):
        manage(production_env(), "no_such_command")


def test_a_failing_commands_output_is_reported_without_a_tokens_secret(tmp_path):
    key_id, secret = "Ab3dEf6hIj9k", "S" * 38  # made up here, the shape of a token
    code = f"print('kw_live_{key_id}_' + 'S' * 38); raise SystemExit(4)"
    env = production_env(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with pytest.raises(CommandFailed) as failure:
        manage(env, "shell", "-c", code)
    message = str(failure.value)
    assert "exited with status 4" in message
    assert f"kw_live_{key_id}_…" in message
    assert secret not in message
