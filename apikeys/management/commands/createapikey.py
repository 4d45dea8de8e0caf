"""Create an API key and print its token alone on standard output."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apikeys.models import Environment, Kind
from apikeys.services import api_key_create
from audit.actors import Actor
from config.errors import KeywardError
from orgs.models import Organization, User, canonical_email

DURATION_RE = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """Return the timedelta of `30d`, `12h`, `15m` or `90s`."""
    match = DURATION_RE.match(text.strip())
    if match is None:
        raise CommandError(
            f"--expires-in: '{text}' is not a duration like 30d, 12h or 15m.", returncode=2
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def parse_resources(entries: list[str]) -> dict[str, list[str]] | None:
    """Return `{"bots": ["a", "b"]}` from `["bots=a,b"]`, or None when none are given."""
    if not entries:
        return None
    resources: dict[str, list[str]] = {}
    for entry in entries:
        name, sep, ids = entry.partition("=")
        values = [i.strip() for i in ids.split(",") if i.strip()]
        if not sep or not name.strip() or not values:
            raise CommandError(f"--resource: '{entry}' is not like bots=bot_1,bot_2.", returncode=2)
        resources.setdefault(name.strip(), []).extend(values)
    return resources


class Command(BaseCommand):
    help = "Create an API key; the token goes alone to standard output, all else to standard error."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="The organisation's slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", help="Comma-separated scope names.")
        parser.add_argument("--environment", default="live", choices=Environment.values)
        parser.add_argument(
            "--kind",
            default=Kind.SECRET,
            choices=Kind.values,
            help="publishable: for code in a web page; needs --allowed-origins.",
        )
        parser.add_argument(
            "--allowed-origins",
            help="Comma-separated origins of a publishable key, like https://shop.example.com.",
        )
        parser.add_argument(
            "--resource",
            action="append",
            default=[],
            metavar="TYPE=ID[,ID…]",
            help="Limit the key to these resources (repeatable), like bots=bot_1,bot_2.",
        )
        parser.add_argument("--expires-in", help="Lifetime such as 30d, 12h or 15m.")
        parser.add_argument(
            "--owner",
            help="Email of the member the key belongs to; needs --password-stdin with their "
            "password, because a personal key's token acts as that person.",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the owner's password from standard input (with --owner).",
        )

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organisation with slug '{options['org']}'.", returncode=1)
        owner = None
        actor = Actor.system("createapikey")
        if options["owner"]:
            owner = User.objects.filter(email=canonical_email(options["owner"])).first()
            if owner is None:
                raise CommandError(f"No user {options['owner']}.", returncode=1)
            # A token that acts as a person is minted only for that person: the
            # command acts as the owner once they have given their password.
            if not options["password_stdin"]:
                raise CommandError(
                    "--owner needs --password-stdin and the owner's password on standard "
                    "input: a personal key is created only by its owner.",
                    returncode=2,
                )
            password = sys.stdin.readline().rstrip("\n")
            if not (owner.is_active and owner.check_password(password)):
                raise CommandError(f"Wrong password for {owner.email}.", returncode=1)
            actor = owner
        scopes = None
        if options["scopes"] is not None:
            scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        expires_at = None
        if options["expires_in"]:
            expires_at = timezone.now() + parse_duration(options["expires_in"])
        origins = None
        if options["allowed_origins"] is not None:
            origins = [o.strip() for o in options["allowed_origins"].split(",") if o.strip()]
        resources = parse_resources(options["resource"])
        try:
            key, token = api_key_create(
                organization=organization,
                actor=actor,
                owner=owner,
                name=options["name"],
                scopes=scopes,
                environment=options["environment"],
                expires_at=expires_at,
                kind=options["kind"],
                allowed_origins=origins,
                resources=resources,
            )
        except KeywardError as exc:
            fields = exc.extra.get("fields") or {}
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()) or exc.message
            raise CommandError(detail, returncode=2) from None
        again = (
            "Its key page can show it again."
            if key.is_publishable
            else "The token below is shown only once."
        )
        self.stderr.write(
            f"Created {key.prefix} ({key.name}) with scopes {', '.join(key.scopes) or 'none'}. "
            + again
        )
        self.stdout.write(token)
