"""Create an organisation and its owner (the user is created when needed)."""

from __future__ import annotations

import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from config.errors import KeywardError
from orgs.models import Organization, User
from orgs.services import clean_email, organization_create

USAGE_ERROR = 2
CONFLICT = 1


class Command(BaseCommand):
    help = "Create an organisation with an owner; the owner's user is created if needed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", required=True, help="The owner's email address.")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password of a new owner from standard input.",
        )

    def handle(self, *args, slug: str, name: str, owner: str, password_stdin: bool, **options):
        try:
            email = clean_email(owner)
        except KeywardError as exc:
            raise CommandError(f"--owner: {exc.message}", returncode=USAGE_ERROR) from None
        if Organization.objects.filter(slug=slug.lower()).exists():
            raise CommandError(f"An organisation with slug '{slug}' exists.", returncode=CONFLICT)
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("No password on standard input.", returncode=USAGE_ERROR)
        try:
            with transaction.atomic():
                user = User.objects.filter(email=email).first()
                if user is None:
                    if password is not None:
                        validate_password(password, User(email=email))
                    user = User.objects.create_user(email=email, password=password)
                    self.stderr.write(f"Created user {email}.")
                elif password is not None:
                    raise CommandError(
                        f"{email} exists already; its password was left unchanged.",
                        returncode=CONFLICT,
                    )
                elif not user.is_email_verified:
                    # The operator vouches for the address of the owner they name.
                    user.email_verified_at = timezone.now()
                    user.save(update_fields=["email_verified_at"])
                organization = organization_create(
                    name=name, slug=slug, owner=user, actor=Actor.system("createorg")
                )
        except DjangoValidationError as exc:
            raise CommandError(
                "Password: " + " ".join(exc.messages), returncode=USAGE_ERROR
            ) from None
        except KeywardError as exc:
            fields = exc.extra.get("fields") or {}
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()) or exc.message
            code = CONFLICT if "taken" in detail else USAGE_ERROR
            raise CommandError(detail, returncode=code) from None
        self.stdout.write(f"Created organisation {organization.slug} with owner {user.email}.")
