"""The four throughput targets, worked out from one `make bench` run's rounds.

Every figure is a ratio of guards measured in the same run, in interleaved
rounds: medians over rounds of per-round ratios, so that drift on a shared
machine hits every guard alike.
"""

from __future__ import annotations

import statistics
from typing import Any


def _ratio(rounds: list[dict], base: list[dict]) -> float:
    return statistics.median(m["rps"] / b["rps"] for m, b in zip(rounds, base, strict=True))


def _p99_added(rounds: list[dict], base: list[dict]) -> float:
    return statistics.median(r["p99"] for r in rounds) - statistics.median(b["p99"] for b in base)


def targets(rounds_by_guard: dict[str, list[dict]]) -> list[tuple[str, str, bool]]:
    """Return (target, measured, met) for each of the four targets."""
    base = rounds_by_guard["no authentication"]
    unlimited = rounds_by_guard["Keyward, unlimited key"]
    limited = rounds_by_guard["Keyward, rate-limited key"]
    peers = {
        name: rounds_by_guard[name]
        for name in ("DRF TokenAuthentication", "djangorestframework-api-key")
        if name in rounds_by_guard
    }
    rows = []
    r_unlimited = _ratio(unlimited, base)
    rows.append(
        ("Keyward, unlimited key ≥ 0.90× no-auth", f"{r_unlimited:.2f}×", r_unlimited >= 0.90)
    )
    r_limited = _ratio(limited, base)
    rows.append(
        ("Keyward, rate-limited key ≥ 0.80× no-auth", f"{r_limited:.2f}×", r_limited >= 0.80)
    )
    if peers:
        best_name, best = max(peers.items(), key=lambda item: _ratio(item[1], base))
        r_best = _ratio(best, base)
        times = r_unlimited / r_best
        times_limited = r_limited / r_best
        rows.append(
            (
                f"≥ 2× the better peer ({best_name}, {r_best:.2f}×)",
                f"{times:.2f}× (unlimited), {times_limited:.2f}× (limited)",
                min(times, times_limited) >= 2,
            )
        )
    added = _p99_added(unlimited, base)
    added_limited = _p99_added(limited, base)
    rows.append(
        (
            "≤ 1 ms added at p99",
            f"{added:+.2f} ms (unlimited), {added_limited:+.2f} ms (limited)",
            max(added, added_limited) <= 1.0,
        )
    )
    return rows


def print_targets(rounds_by_guard: dict[str, Any]) -> None:
    print("Targets (ratios from this run only):")
    print("| target | measured | met? |")
    print("|---|---|---|")
    for target, measured, met in targets(rounds_by_guard):
        print(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
