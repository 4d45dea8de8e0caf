"""Print (or apply) the grants of the PostgreSQL role the application should run as."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from audit.roles import application_role_grants

USAGE_ERROR = 2


class Command(BaseCommand):
    help = (
        "Print the SQL giving the application's PostgreSQL role its privileges: everything "
        "on Keyward's tables except changing or removing audit events. Run it as the owner "
        "role (the one that runs migrate); --apply executes it over this connection."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--role", required=True, help="The application's role name.")
        parser.add_argument(
            "--no-prune",
            action="store_true",
            help="Do not let the application role prune the audit log; run pruneaudit as "
            "the owner role instead.",
        )
        parser.add_argument("--apply", action="store_true", help="Execute the statements.")

    def handle(self, *args, role: str, no_prune: bool, apply: bool, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Roles and grants are PostgreSQL's.", returncode=USAGE_ERROR)
        statements = application_role_grants(
            connection=connection, role=role, may_prune=not no_prune
        )
        if apply:
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        for statement in statements:
            self.stdout.write(f"{statement};")
