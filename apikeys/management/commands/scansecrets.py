"""Scan files for Keyward tokens; exit 1 when one is found, and optionally revoke it."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apikeys import scanning, tokens
from apikeys.models import APIKey
from apikeys.services import api_key_revoke
from audit.actors import Actor


class Command(BaseCommand):
    help = (
        "Find Keyward API keys in files and directories. Prints file, line and key prefix, "
        "never the secret, with the checksum's verdict; exits 1 when a key whose checksum is valid "
        "is found."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument(
            "--revoke",
            action="store_true",
            help="Revoke every key found whose secret matches and that is still active.",
        )
        parser.add_argument(
            "--include-publishable",
            action="store_true",
            help="Report publishable keys (kw_pub_…) too; they are public by design.",
        )

    def handle(
        self, *args, paths: list[str], revoke: bool, include_publishable: bool, **options
    ) -> None:
        missing = [path for path in paths if not Path(path).exists()]
        if missing:
            raise CommandError(f"No such file or directory: {', '.join(missing)}", returncode=2)
        found = scanning.scan(paths, include_publishable=include_publishable)
        for finding in found:
            self.stdout.write(str(finding))
        findings = [finding for finding in found if isinstance(finding, scanning.Finding)]
        if revoke:
            for token in {f.token.token: f.token for f in findings}.values():
                self.stdout.write(f"{token.prefix}_…: {self.revoke(token)}")
        if findings:
            self.stderr.write(
                f"{len(findings)} Keyward API key(s) found. Remove them, and revoke any that "
                "reached a shared place (--revoke, or `manage.py revokeapikey <key_id>`)."
            )
            sys.exit(1)

    def revoke(self, token: tokens.ParsedToken) -> str:
        """Revoke the key `token` belongs to when its secret matches; say what happened."""
        key = APIKey.objects.filter(pk=token.key_id).first()
        if key is None:
            return "unknown to this deployment"
        matches, _ = tokens.check_hash(token.token, key.secret_hash)
        if not matches or key.prefix != token.prefix:
            # Anyone can forge a checksum: only the real secret may get a key revoked.
            return "not revoked: the secret does not match this key"
        if key.revoked_at is not None:
            return "already revoked"
        api_key_revoke(key=key, actor=Actor.system("scansecrets"))
        return "revoked"
