"""List the client addresses that presented the most invalid keys lately."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apikeys.abuse import RETENTION
from apikeys.selectors import top_offenders

MAX_HOURS = int(RETENTION.total_seconds() // 3600)


class Command(BaseCommand):
    help = (
        "List the addresses (IPv6: their /64) that presented the most invalid keys in the "
        "last hours. Each process writes a minute's tally once that minute is over."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--hours", default="1", help=f"How far back, 1 to {MAX_HOURS}.")
        parser.add_argument("--limit", default="20", help="How many addresses, 1 to 1000.")

    def handle(self, *args, hours: str, limit: str, **options) -> None:
        hours_n = self._whole(hours, "--hours", MAX_HOURS)
        limit_n = self._whole(limit, "--limit", 1000)
        since = timezone.now() - timedelta(hours=hours_n)
        rows = top_offenders(since=since, limit=limit_n)
        if not rows:
            self.stderr.write(f"No invalid keys recorded in the last {hours_n} hour(s).")
            return
        table = [("ADDRESS", "INVALID KEYS", "LAST SEEN (UTC)")]
        table += [(a, str(n), f"{seen:%Y-%m-%d %H:%M}") for a, n, seen in rows]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        for row in table:
            self.stdout.write(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )

    @staticmethod
    def _whole(value: str, name: str, upper: int) -> int:
        if not value.isdigit() or not 1 <= int(value) <= upper:
            raise CommandError(f"{name} takes a whole number from 1 to {upper}.", returncode=2)
        return int(value)
