import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from orgs.models import Membership, Organization, User


def run(*args, stdin: str | None = None):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        import sys
        from unittest import mock

        with mock.patch.object(sys, "stdin", io.StringIO(stdin)):
            call_command("createorg", *args, stdout=out, stderr=err)
    else:
        call_command("createorg", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_createorg_creates_user_org_and_owner_with_system_events():
    out, _ = run("acme", "--name", "Acme", "--owner", "Alice@Example.com")
    organization = Organization.objects.get(slug="acme")
    user = User.objects.get(email="alice@example.com")
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user, organization=organization).role == "owner"
    assert "acme" in out
    event = AuditEvent.objects.get(organization=organization, action="org.created")
    assert (event.actor_type, event.actor_label) == ("system", "createorg")


@pytest.mark.django_db
def test_createorg_reads_the_password_from_stdin():
    run(
        "acme",
        "--name",
        "Acme",
        "--owner",
        "bob@example.com",
        "--password-stdin",
        stdin="s3cret-Passphrase!\n",
    )
    assert User.objects.get(email="bob@example.com").check_password("s3cret-Passphrase!")


@pytest.mark.django_db
def test_createorg_reuses_an_existing_user(make_user):
    user = make_user("carol@example.com")
    run("acme", "--name", "Acme", "--owner", "CAROL@example.com")
    assert Membership.objects.get(organization__slug="acme").user == user
    assert User.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "returncode"),
    [
        (["bad slug!", "--name", "Acme", "--owner", "a@example.com"], 2),
        (["acme", "--name", "Acme", "--owner", "not-an-email"], 2),
        (["acme", "--name", "", "--owner", "a@example.com"], 2),
        (["x" * 60, "--name", "Acme", "--owner", "a@example.com"], 2),
    ],
)
def test_createorg_bad_input_exits_non_zero_and_creates_nothing(args, returncode):
    with pytest.raises(CommandError) as error:
        run(*args)
    assert error.value.returncode == returncode
    assert not Organization.objects.exists()
    assert not User.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_createorg_existing_slug_exits_1_and_creates_nothing(make_org):
    make_org("acme")
    users, events = User.objects.count(), AuditEvent.objects.count()
    with pytest.raises(CommandError) as error:
        run("acme", "--name", "Again", "--owner", "new@example.com")
    assert error.value.returncode == 1
    assert "acme" in str(error.value)
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)


@pytest.mark.django_db
def test_createorg_weak_password_is_refused_and_creates_nothing():
    with pytest.raises(CommandError):
        run("acme", "--name", "Acme", "--owner", "d@example.com", "--password-stdin", stdin="123\n")
    assert not User.objects.exists()


def test_createorg_exit_status_from_the_shell(tmp_path):
    """The command-line contract: a usage error is exit status 2, with a message."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "createorg", "bad slug", "--name", "A", "--owner", "a@b.co"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "slug" in result.stderr
