"""Create the demo organisation and its owner once, and print the owner's login."""

from __future__ import annotations

import secrets

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from orgs.models import Organization, User
from orgs.services import organization_create

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.keyward.local"


class Command(BaseCommand):
    help = "Create the demo organisation with an owner who can log in (first run only)."

    def handle(self, *args, **options) -> None:
        existing = Organization.objects.filter(slug=DEMO_SLUG).first()
        if existing is not None:
            self.stdout.write(
                f"Demo organisation '{DEMO_SLUG}' exists; log in as {DEMO_EMAIL} "
                "with the password printed on the first run "
                "(or set a new one: python manage.py changepassword " + DEMO_EMAIL + ")."
            )
            self.seed_product(existing)
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.filter(email=DEMO_EMAIL).first()
            if user is None:
                user = User.objects.create_superuser(email=DEMO_EMAIL, password=password)
            else:
                user.set_password(password)
                user.email_verified_at = user.email_verified_at or timezone.now()
                user.save(update_fields=["password", "email_verified_at"])
            organization = organization_create(
                name="Demo Company", slug=DEMO_SLUG, owner=user, actor=Actor.system("seeddemo")
            )
        bar = "=" * 64
        self.stdout.write(
            f"{bar}\nDemo organisation created.\n"
            f"  Log in at http://127.0.0.1:8000/admin/ (and /accounts/login/)\n"
            f"  email:    {DEMO_EMAIL}\n  password: {password}\n"
            f"This password is printed only this once.\n{bar}"
        )
        self.seed_product(organization)

    def seed_product(self, organization: Organization) -> None:
        """Give the demo organisation the demo product's bots, when that app is installed."""
        if not apps.is_installed("demo"):
            return
        from demo.services import bots_seed_demo

        bots = bots_seed_demo(organization=organization)
        listed = ", ".join(f"{bot.id} ({bot.name})" for bot in bots)
        self.stdout.write(f"Demo bots: {listed}.")
