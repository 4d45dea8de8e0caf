"""Create the bench organisation, its keys and the peers' credentials; print them as JSON."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from apikeys.services import api_key_create
from audit.actors import Actor
from orgs.models import User
from orgs.roles import Role
from orgs.services import membership_add, organization_create

# High enough that a benchmark round never reaches it: the throttle's cost is measured, not 429s.
BENCH_RATE_LIMIT = "100000000/h"


class Command(BaseCommand):
    help = "Seed a fresh bench database; print tokens as JSON (bench databases only)."

    def handle(self, *args, **options) -> None:
        system = Actor.system("bench")
        owner = User.objects.create_user(email="owner@bench.example", password=None)
        admin = User.objects.create_user(email="admin@bench.example", password=None)
        org = organization_create(name="Bench", slug="bench", owner=owner, actor=system)
        membership_add(organization=org, user=admin, role=Role.ADMIN, actor=system)

        def key(name: str, scopes: list[str], **fields) -> dict[str, str]:
            # A personal key is made by its owner (docs/README-security.md).
            actor = fields.get("owner") or system
            made, token = api_key_create(
                organization=org, actor=actor, name=name, scopes=scopes, **fields
            )
            return {"id": made.id, "token": token}

        peer_user = User.objects.create_user(email="drf@bench.example", password=None)
        peer_key = None
        if settings.BENCH_PEERS:
            from rest_framework_api_key.models import APIKey as PeerAPIKey

            _, peer_key = PeerAPIKey.objects.create_key(name="bench")
        out = {
            "unlimited": key("unlimited", ["keys:read"]),
            "webhooked": _webhooked_key(system),
            "limited": key("limited", ["keys:read"], rate_limit=BENCH_RATE_LIMIT),
            "manager": key("manager", ["keys:read", "keys:write"]),
            "target": key("target", ["keys:read", "keys:write"]),
            "personal": key("personal", ["keys:read", "keys:write", "audit:read"], owner=admin),
            "admin_email": admin.email,
            "drf_token": Token.objects.create(user=peer_user).key,
            "drf_api_key": peer_key,
        }
        self.stdout.write(json.dumps(out))


def _webhooked_key(system: Actor) -> dict[str, str]:
    """Return a key of a second organisation whose webhook endpoint takes every event."""
    from django.test import override_settings

    from events.services import webhook_endpoint_create

    owner = User.objects.create_user(email="owner@hooks.bench.example", password=None)
    org = organization_create(name="Bench hooks", slug="bench-hooks", owner=owner, actor=system)
    with override_settings(KEYWARD_WEBHOOK_ALLOW_PRIVATE=True):  # never resolved: no worker runs
        webhook_endpoint_create(organization=org, actor=system, url="https://hooks.bench.invalid/")
    made, token = api_key_create(
        organization=org, actor=system, name="unlimited", scopes=["keys:read"]
    )
    return {"id": made.id, "token": token}
