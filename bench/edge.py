"""What the input edge costs per request, in-process: `python bench/edge.py`.

`RequestEdgeMiddleware.refusal()` against its baseline in the same run: the parsing
Django does for the same request anyway (the query string, which KeyInUrlMiddleware
and the views read; the form body, which CsrfViewMiddleware reads). The edge keeps
what it parses on the request, so the difference is what it adds. No database, no
cache; each figure is the best of 9 interleaved rounds (wall clock, like timeit).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

import django

django.setup()

from django.test import RequestFactory  # noqa: E402

from config.middleware import RequestEdgeMiddleware  # noqa: E402

CALLS, ROUNDS = 10_000, 9


def mean_of(make, fn) -> float:
    """Return the mean microseconds of `fn(request)` over fresh requests."""
    requests = [make() for _ in range(CALLS)]
    started = time.perf_counter()
    for request in requests:
        fn(request)
    return (time.perf_counter() - started) / CALLS * 1e6


def best_of_interleaved(make, baseline, edge) -> tuple[float, float]:
    """Return the best of ROUNDS for each, the two measured turn about in every round."""
    base, with_edge = float("inf"), float("inf")
    for _ in range(ROUNDS):
        base = min(base, mean_of(make, baseline))
        with_edge = min(with_edge, mean_of(make, edge))
    return base, with_edge


def main() -> None:
    factory = RequestFactory()
    edge = RequestEdgeMiddleware(lambda request: None)
    cases = {
        "API GET, no query": (
            lambda: factory.get("/api/v1/whoami", HTTP_COOKIE=""),
            lambda request: None,
        ),
        "API GET, 2-field query": (
            lambda: factory.get("/api/v1/keys?status=active&limit=50", HTTP_COOKIE=""),
            lambda request: list(request.GET.lists()),
        ),
        "page POST, 3-field form": (
            lambda: factory.post(
                "/orgs/acme/settings/api-keys/new/",
                {"name": "CI", "nonce": "abc", "scopes": ["keys:read"]},
            ),
            lambda request: (list(request.POST.lists()), request.COOKIES),
        ),
    }
    print(f"{'request':<26}{'baseline µs':>12}{'edge µs':>10}{'added µs':>10}{'ratio':>8}")
    for name, (make, baseline) in cases.items():
        base, with_edge = best_of_interleaved(make, baseline, edge.refusal)
        print(
            f"{name:<26}{base:>12.2f}{with_edge:>10.2f}{with_edge - base:>10.2f}"
            f"{with_edge / base if base > 0.05 else float('nan'):>8.2f}"
        )


if __name__ == "__main__":
    main()
