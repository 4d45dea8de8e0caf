import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from apikeys import tokens
from apikeys.models import APIKey
from apikeys.tests.kinds_urls import RESOURCE_TYPES, SCOPES
from audit.models import AuditEvent


def call(name, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createapikey_prints_the_token_alone_on_stdout(org):
    out, err = call(
        "createapikey", "--org", org.slug, "--name", "CI", "--scopes", "keys:read,usage:read",
        "--environment", "test", "--expires-in", "30d",
    )  # fmt: skip
    token = out.strip()
    assert out.count("\n") <= 1 and tokens.looks_like_token(token)
    key = APIKey.objects.get(pk=tokens.parse(token).key_id)
    assert (key.environment, key.scopes) == ("test", ["keys:read", "usage:read"])
    assert key.expires_at is not None
    assert token not in err and key.prefix in err
    event = AuditEvent.objects.get(action="api_key.created", target_id=key.id)
    assert (event.actor_type, event.actor_label) == ("system", "createapikey")


def test_createapikey_personal_key_for_a_member(org, owner, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    out, _ = call(
        "createapikey", "--org", org.slug, "--name", "mine", "--owner", owner.email,
        "--password-stdin",
    )  # fmt: skip
    assert APIKey.objects.get(pk=tokens.parse(out.strip()).key_id).owner == owner


@pytest.mark.parametrize(
    "args",
    [
        ["--org", "nope", "--name", "x"],
        ["--org", "acme", "--name", ""],
        ["--org", "acme", "--name", "x", "--scopes", "bogus"],
        ["--org", "acme", "--name", "x", "--expires-in", "soon"],
        ["--org", "acme", "--name", "x", "--owner", "ghost@example.com"],
    ],
)
def test_createapikey_bad_input_fails_and_creates_nothing(org, args):
    with pytest.raises(CommandError):
        call("createapikey", *args)
    assert not APIKey.objects.exists()


def test_revokeapikey_revokes_and_audits_as_system(org, make_key):
    key, _ = make_key(org)
    out, _ = call("revokeapikey", key.id)
    assert "revoked" in out
    assert APIKey.objects.get(pk=key.pk).revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.revoked", target_id=key.id)
    assert (event.actor_type, event.actor_label) == ("system", "revokeapikey")
    with pytest.raises(CommandError):
        call("revokeapikey", "doesnotexist")


def test_listapikeys_lists_without_tokens(org, make_key):
    key, token = make_key(org, name="listed")
    out, _ = call("listapikeys", "--org", org.slug)
    assert key.masked in out and "listed" in out
    assert token not in out


def test_token_capture_works_from_a_shell(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    subprocess.run(
        [*manage, "createorg", "acme", "--name", "Acme", "--owner", "a@example.com"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    result = subprocess.run(
        [*manage, "createapikey", "--org", "acme", "--name", "shell"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert tokens.looks_like_token(result.stdout.strip())


@override_settings(KEYWARD_SCOPES=SCOPES, KEYWARD_RESOURCE_TYPES=RESOURCE_TYPES)
def test_createapikey_makes_dev_publishable_and_resource_limited_keys(org):
    out, _ = call("createapikey", "--org", org.slug, "--name", "laptop", "--environment", "dev")
    assert out.strip().startswith("kw_dev_")
    out, err = call(
        "createapikey", "--org", org.slug, "--name", "widget", "--kind", "publishable",
        "--scopes", "embed", "--allowed-origins", "https://shop.example.com,http://localhost:3000",
    )  # fmt: skip
    key = APIKey.objects.get(pk=tokens.parse(out.strip()).key_id)
    assert key.prefix.startswith("kw_pub_live_") and out.strip().startswith(key.prefix)
    assert key.allowed_origins == ["https://shop.example.com", "http://localhost:3000"]
    out, _ = call(
        "createapikey", "--org", org.slug, "--name", "two things", "--scopes", "keys:read",
        "--resource", "things=acme-t1", "--resource", "things=acme-t2",
    )  # fmt: skip
    limited = APIKey.objects.get(pk=tokens.parse(out.strip()).key_id)
    assert limited.resources == {"things": ["acme-t1", "acme-t2"]}
    listing, _ = call("listapikeys", "--org", org.slug)
    assert "publishable" in listing and "dev" in listing


@override_settings(KEYWARD_SCOPES=SCOPES, KEYWARD_RESOURCE_TYPES=RESOURCE_TYPES)
@pytest.mark.parametrize(
    "args",
    [
        ["--environment", "prod"],
        ["--kind", "publishable", "--scopes", "embed"],
        ["--kind", "publishable", "--scopes", "embed", "--allowed-origins", "*"],
        ["--kind", "publishable", "--scopes", "keys:read", "--allowed-origins", "https://a.com"],
        ["--allowed-origins", "https://a.com"],
        ["--resource", "things"],
        ["--resource", "things=nope"],
        ["--resource", "robots=x"],
    ],
)
def test_createapikey_refuses_bad_kinds_and_creates_nothing(org, args):
    with pytest.raises(CommandError):
        call("createapikey", "--org", org.slug, "--name", "x", *args)
    assert not APIKey.objects.exists()
