"""`manage.py scansecrets`: finds real tokens, ignores look-alikes, never prints a secret."""

from __future__ import annotations

import io
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

from apikeys import tokens
from apikeys.models import APIKey
from audit.models import AuditEvent

BASE_DIR = Path(settings.BASE_DIR)


def scan(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("scansecrets", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


def secret_of(token: str) -> str:
    return token.split("_", 3)[3]


def test_a_token_is_reported_by_file_line_and_prefix_only(tmp_path):
    token = tokens.generate("live").token
    path = tmp_path / "settings.env"
    path.write_text(f"DEBUG=1\n\nKEYWARD_KEY={token}\n")
    code, out, err = scan(str(path))
    assert code == 1
    assert out == f"{path}:3: {tokens.parse(token).prefix}_… (a Keyward API key; checksum valid)\n"
    assert "1 Keyward API key(s) found" in err
    assert secret_of(token) not in out + err


def test_every_token_is_found_in_directories_binaries_and_crowded_lines(tmp_path):
    found = [tokens.generate(env).token for env in ("live", "test", "live", "live")]
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "deeper" / "config.json").write_text(
        f'{{"a": "{found[0]}", "b": "Bearer {found[1]}"}}'
    )
    (tmp_path / "dump.bin").write_bytes(b"\x00\xff" + found[2].encode() + b"\x00\xfe\n")
    (tmp_path / "glued.txt").write_text(f"x{found[3]}ZZZ\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "ORIG").write_text(tokens.generate("live").token)  # skipped
    code, out, _ = scan(str(tmp_path))
    assert code == 1
    assert len(out.splitlines()) == 4
    for token in found:
        assert tokens.parse(token).prefix in out
        assert secret_of(token) not in out


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-6] + ("000000" if t[-6:] != "000000" else "000001"),  # bad checksum
        lambda t: t[:12] + ("A" if t[12] != "A" else "B") + t[13:],  # a typo in the key id
        lambda t: "kw_live_" + "x" * 12 + "_" + "y" * 38,  # made up
    ],
)
def test_near_misses_get_the_checksum_verdict_and_do_not_fail_the_scan(tmp_path, mangle):
    path = tmp_path / "doc.md"
    near_miss = mangle(tokens.generate("live").token)
    path.write_text(f"Example:\n{near_miss}\n")
    code, out, err = scan(str(path))
    assert (code, err) == (0, "")
    prefix = near_miss[: near_miss.rindex("_")]
    assert out == (
        f"{path}:2: {prefix}_… (shaped like a Keyward API key, but its checksum fails: "
        "a placeholder or a mistyped key, not a usable one)\n"
    )
    assert near_miss[-38:] not in out


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[: t.rindex("_")],  # the public prefix alone
        lambda t: t.replace("kw_", "xx_", 1),  # another brand
        lambda t: t.replace("_live_", "_prod_"),
        lambda t: "kw_live_<key_id>_<secret><checksum>",  # documentation
    ],
)
def test_look_alikes_are_not_reported(tmp_path, mangle):
    path = tmp_path / "doc.md"
    path.write_text(f"Example: {mangle(tokens.generate('live').token)}\n")
    assert scan(str(path)) == (0, "", "")


def test_a_missing_path_is_an_error_not_a_clean_scan(tmp_path):
    with pytest.raises(CommandError, match="No such file") as error:
        scan(str(tmp_path / "nope"))
    assert error.value.returncode == 2


def test_the_repository_holds_no_token():
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=BASE_DIR, capture_output=True, check=True
    ).stdout.split(b"\0")
    paths = [str(BASE_DIR / name.decode()) for name in tracked if name]
    paths = [p for p in paths if Path(p).is_file()]
    assert len(paths) > 50
    code, out, _ = scan(*paths)
    assert (code, out) == (0, "")


@pytest.mark.django_db
def test_revoke_revokes_active_keys_found_and_records_who(tmp_path, org, make_key):
    active, active_token = make_key(org)
    done, done_token = make_key(org)
    call_command("revokeapikey", done.id, stdout=io.StringIO())
    forged_body = f"{tokens.brand()}_live_{make_key(org)[0].id}_" + "Q" * tokens.SECRET_LENGTH
    forged = forged_body + tokens.checksum(forged_body)  # right key id, wrong secret
    unknown = tokens.generate("live").token
    path = tmp_path / "leak.log"
    path.write_text("\n".join([active_token, done_token, forged, unknown, active_token]))

    code, out, _ = scan("--revoke", str(path))

    assert code == 1
    assert f"{active.prefix}_…: revoked" in out
    assert f"{done.prefix}_…: already revoked" in out
    assert f"{tokens.parse(forged).prefix}_…: not revoked: the secret does not match" in out
    assert f"{tokens.parse(unknown).prefix}_…: unknown to this deployment" in out
    assert out.count(": revoked") == 1  # the twice-leaked key is revoked once
    for token in (active_token, done_token, forged, unknown):
        assert secret_of(token) not in out
    active.refresh_from_db()
    assert active.revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.revoked", target_id=active.id)
    assert (event.actor_type, event.actor_label) == ("system", "scansecrets")
    forged_key = APIKey.objects.get(pk=tokens.parse(forged).key_id)
    assert forged_key.revoked_at is None


def hook_entry(config: str, hook_id: str) -> list[str]:
    document = yaml.safe_load((BASE_DIR / config).read_text())
    hooks = document if isinstance(document, list) else document["repos"][0]["hooks"]
    return shlex.split(next(h for h in hooks if h["id"] == hook_id)["entry"])


def test_the_pre_commit_hooks_run_the_scanner():
    assert hook_entry(".pre-commit-hooks.yaml", "keyward-scansecrets")[-2:] == [
        "manage.py",
        "scansecrets",
    ]
    assert hook_entry(".pre-commit-config.yaml", "keyward-scansecrets")[-2:] == [
        "manage.py",
        "scansecrets",
    ]


def test_the_local_pre_commit_hook_refuses_a_file_with_a_token(tmp_path):
    token = tokens.generate("live").token
    leak, clean = tmp_path / "leak.py", tmp_path / "clean.py"
    leak.write_text(f'KEY = "{token}"\n')
    clean.write_text("KEY = os.environ['KEYWARD_KEY']\n")
    entry = hook_entry(".pre-commit-config.yaml", "keyward-scansecrets")
    env = {"PATH": "/usr/bin:/bin"}
    refused = subprocess.run([*entry, str(leak)], cwd=BASE_DIR, env=env, capture_output=True)
    passed = subprocess.run([*entry, str(clean)], cwd=BASE_DIR, env=env, capture_output=True)
    assert refused.returncode == 1, refused.stderr
    assert passed.returncode == 0, passed.stderr
    assert secret_of(token).encode() not in refused.stdout + refused.stderr


def test_dev_tokens_are_found_and_publishable_ones_only_when_asked(tmp_path):
    dev = tokens.generate("dev").token
    public = tokens.generate("live", publishable=True).token
    path = tmp_path / "app.js"
    path.write_text(f'const key = "{public}";\nconst oops = "{dev}";\n')
    code, out, _ = scan(str(path))
    assert code == 1
    assert out == f"{path}:2: {tokens.parse(dev).prefix}_… (a Keyward API key; checksum valid)\n"
    code, out, _ = scan("--include-publishable", str(path))
    assert code == 1 and len(out.splitlines()) == 2
    assert (
        f"{path}:1: {tokens.parse(public).prefix}_… (a publishable Keyward key; checksum valid)"
        in out
    )
    assert public.split("_")[-1] not in out and dev.split("_")[-1] not in out
    path.write_text(f"<script data-key='{public}'></script>\n")
    assert scan(str(path))[0] == 0  # a widget key in a web page is where it belongs
