"""Walk every organisation's audit chain and name the first event that does not match."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify
from orgs.models import Organization

BROKEN = 1
USAGE_ERROR = 2


class Command(BaseCommand):
    help = (
        "Verify the audit hash chains; exit 0 when every chain holds, 1 naming the first "
        "event that does not match."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", help="Verify only this organisation's chain (its slug).")

    def handle(self, *args, **options) -> None:
        organizations = Organization.objects.order_by("pk")
        if options["org"]:
            organizations = organizations.filter(slug=options["org"])
            if not organizations.exists():
                raise CommandError(
                    f"No organisation with slug '{options['org']}'.", returncode=USAGE_ERROR
                )
        broken = []
        for organization in organizations.iterator():
            report = audit_chain_verify(organization=organization)
            if report.holds:
                head = f"head #{report.head_seq} {report.head_hash}"
                self.stdout.write(f"{organization.slug}: ok, {report.checked} events, {head}")
                continue
            event = report.broken_at
            where = f" at event id {event.pk} (seq {event.seq}, {event.action})" if event else ""
            line = f"{organization.slug}: BROKEN{where}: {report.reason}"
            self.stderr.write(line)
            broken.append(line)
        if broken:
            raise CommandError(
                f"{len(broken)} audit chain(s) broken; first: {broken[0]}", returncode=BROKEN
            )
