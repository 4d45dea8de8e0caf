"""List an organisation's API keys (never their tokens)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apikeys.models import APIKey
from orgs.models import Organization


class Command(BaseCommand):
    help = "List an organisation's API keys, newest first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="The organisation's slug.")

    def handle(self, *args, org: str, **options) -> None:
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with slug '{org}'.", returncode=1)
        now = timezone.now()
        keys = APIKey.objects.filter(organization=organization).select_related("owner")
        rows = [("KEY", "NAME", "KIND", "ENVIRONMENT", "STATUS", "SCOPES", "OWNER", "LAST USED")]
        for key in keys.order_by("-created_at", "-id"):
            rows.append(
                (
                    key.masked,
                    key.name,
                    key.kind,
                    key.environment,
                    key.status_at(now),
                    ",".join(key.scopes),
                    key.owner.email if key.owner_id else "(organisation)",
                    f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
                )
            )
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )
