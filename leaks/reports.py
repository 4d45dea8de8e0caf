"""Which reported strings are real, usable keys, and what becomes of them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache as default_cache

from apikeys import tokens
from apikeys.abuse import offender_of
from apikeys.counters import incr_with_ttl
from apikeys.models import APIKey
from apikeys.services import api_key_leak_report
from config.errors import RateLimited

# An HMAC compare against this stands in for a key that does not exist, so that an
# unknown key id costs the same work as a known one with a wrong secret.
_ABSENT_HASH = "0" * 64


@dataclass(frozen=True)
class Reported:
    """One string someone says they found in public, and where."""

    token: str
    token_type: str = ""
    url: str = ""
    source: str = ""


def handle_reported(reports: list[Reported], *, reporter: str) -> set[str]:
    """Handle every report whose token is a real key as a leak; return the real tokens.

    Strings that are not well formed or fail the checksum are dropped unread; the
    rest are looked up in one query, and only a token whose secret matches its key
    counts. The leak itself (flag, audit event, revocation) is one transaction per
    key, through `api_key_leak_report`, which ignores keys already handled.
    """
    parsed: dict[str, tuple[tokens.ParsedToken, Reported]] = {}
    for report in reports:
        try:
            token = tokens.parse(report.token)
        except tokens.MalformedToken:
            continue
        parsed.setdefault(token.token, (token, report))
    if not parsed:
        return set()
    key_ids = {token.key_id for token, _report in parsed.values()}
    keys = APIKey.objects.select_related("organization").in_bulk(key_ids)
    real: set[str] = set()
    for text, (token, report) in parsed.items():
        key = keys.get(token.key_id)
        matches, _upgrade = tokens.check_hash(text, key.secret_hash if key else _ABSENT_HASH)
        if key is None or not matches or key.environment != token.environment:
            continue
        real.add(text)
        api_key_leak_report(key=key, reporter=reporter, url=report.url, source=report.source)
    return real


class ReportLimit:
    """Sixty reports per client address per clock hour; an IPv6 /64 counts as one address."""

    limit = 60
    period = 3600
    cache = default_cache
    clock = staticmethod(time.time)

    def count(self, address: str | None) -> None:
        """Count one report from `address`; raise RateLimited past the limit."""
        now = self.clock()
        window = int(now // self.period)
        who = offender_of(address) or "unknown"
        used = incr_with_ttl(self.cache, f"keyward:leaks:reports:{who}:{window}", self.period)
        if used > self.limit:
            raise RateLimited(
                "Too many reports from your address; try again later.",
                retry_after=int(self.period - now % self.period) + 1,
            )
