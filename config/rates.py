"""Rates written `N/s`, `N/min`, `N/h` or `N/day`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PERIODS = {"s": 1, "min": 60, "h": 3600, "day": 86400}
RATE_RE = re.compile(r"^([1-9][0-9]{0,8})/(s|min|h|day)$")


class MalformedRate(ValueError):
    """The text is not a rate."""


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int
    text: str


@lru_cache(maxsize=256)
def parse_rate(text: str) -> Rate:
    """Return the Rate that `text` writes, or raise MalformedRate."""
    match = RATE_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise MalformedRate(
            f"'{text}' is not a rate. Write N/s, N/min, N/h or N/day, "
            "with N a positive whole number."
        )
    return Rate(limit=int(match.group(1)), period=PERIODS[match.group(2)], text=text.strip())
