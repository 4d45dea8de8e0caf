"""Change a member's role through the service, as the members page will."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from audit.actors import Actor
from orgs.models import Membership
from orgs.services import membership_role_change


class Command(BaseCommand):
    help = "Give a member another role (bench and multi-process test only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("org")
        parser.add_argument("email")
        parser.add_argument("role")

    def handle(self, *args, org: str, email: str, role: str, **options) -> None:
        membership = Membership.objects.select_related("organization").get(
            organization__slug=org, user__email=email
        )
        membership_role_change(membership=membership, role=role, actor=Actor.system("bench"))
        self.stdout.write(f"{email} is now {role} in {org}.")
