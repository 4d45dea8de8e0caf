"""Revoke an API key by its id."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apikeys.models import APIKey
from apikeys.services import api_key_revoke
from audit.actors import Actor


class Command(BaseCommand):
    help = "Revoke an API key at once, for every process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key_id")

    def handle(self, *args, key_id: str, **options) -> None:
        key = APIKey.objects.filter(pk=key_id).first()
        if key is None:
            raise CommandError(f"No key with id '{key_id}'.", returncode=1)
        was_revoked = key.revoked_at is not None
        key = api_key_revoke(key=key, actor=Actor.system("revokeapikey"))
        state = "was already revoked" if was_revoked else "is revoked"
        self.stdout.write(
            f"{key.prefix} ({key.name}) {state} since {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC."
        )
