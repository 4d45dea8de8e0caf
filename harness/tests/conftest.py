"""Fixtures of the harness's own tests: the programs they need, required in CI."""

from __future__ import annotations

import os

import pytest

from harness import postgres_bin, redis_server


def require(found: object, what: str) -> None:
    """Skip without `what`, or fail where KEYWARD_REQUIRE_SERVICES says it must be there."""
    if found:
        return
    if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
        pytest.fail(f"{what} is required here and was not found.")
    pytest.skip(f"{what} not found")


@pytest.fixture
def needs_postgres() -> None:
    require(postgres_bin(), "PostgreSQL's initdb")


@pytest.fixture
def needs_redis() -> None:
    require(redis_server(), "redis-server")
