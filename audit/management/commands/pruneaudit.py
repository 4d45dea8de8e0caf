"""Remove old audit events while keeping every chain verifiable."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.services import audit_prune
from orgs.models import Organization

AGE_RE = re.compile(r"^([1-9][0-9]{0,5})([hd])$")
UNITS = {"h": "hours", "d": "days"}
USAGE_ERROR = 2


def parse_age(text: str) -> timedelta:
    """Return the timedelta of `365d` or `48h`."""
    match = AGE_RE.match(text.strip())
    if match is None:
        raise CommandError(
            f"--older-than: '{text}' is not an age like 365d or 48h.", returncode=USAGE_ERROR
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = (
        "Remove audit events older than --older-than (such as 365d); a checkpoint keeps "
        "verifyaudit working, and the newest event of each organisation is always kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", required=True, help="An age such as 365d or 48h.")
        parser.add_argument("--org", help="Prune only this organisation (its slug).")

    def handle(self, *args, **options) -> None:
        cutoff = timezone.now() - parse_age(options["older_than"])
        organizations = Organization.objects.order_by("pk")
        if options["org"]:
            organizations = organizations.filter(slug=options["org"])
            if not organizations.exists():
                raise CommandError(
                    f"No organisation with slug '{options['org']}'.", returncode=USAGE_ERROR
                )
        total = 0
        for organization in organizations.iterator():
            result = audit_prune(organization_id=organization.pk, older_than=cutoff)
            total += result.removed
            if result.checkpoint is not None:
                self.stdout.write(
                    f"{organization.slug}: removed {result.removed} events through "
                    f"#{result.checkpoint.seq}"
                )
        self.stdout.write(f"Removed {total} events older than {cutoff.isoformat()}.")
