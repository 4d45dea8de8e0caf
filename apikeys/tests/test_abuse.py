from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apikeys import tokens
from apikeys.abuse import (
    FailedAttemptLog,
    InvalidKeyGuard,
    failed_attempts,
    offender_of,
    seconds_until_allowed,
)
from apikeys.models import FailedKeyAttempts
from apikeys.services import api_key_rotate
from audit.actors import Actor

NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(NOON + 5)
    monkeypatch.setattr(InvalidKeyGuard, "clock", staticmethod(clock))
    monkeypatch.setattr(FailedAttemptLog, "clock", staticmethod(clock))
    return clock


def made_up_token() -> str:
    """Return a well-formed token (correct checksum) of a key that does not exist."""
    return tokens.generate("live").token


def whoami(client, token, address="203.0.113.7"):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


def test_21_invalid_keys_get_429_while_a_valid_key_still_works(client, org, make_key, clock):
    _, valid = make_key(org)
    statuses = [whoami(client, made_up_token()).status_code for _ in range(20)]
    assert statuses == [401] * 20
    refused = whoami(client, made_up_token())
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 120
    assert whoami(client, "kw_live_garbage").status_code == 429
    assert whoami(client, valid).status_code == 200
    assert whoami(client, made_up_token(), address="198.51.100.1").status_code == 401


def test_malformed_and_unknown_keys_both_count(client, db, clock):
    for i in range(20):
        token = made_up_token() if i % 2 else "kw_live_" + "x" * 51
        assert whoami(client, token).status_code == 401
    assert whoami(client, made_up_token()).status_code == 429


def test_expired_keys_are_not_guesses(client, org, make_key, clock):
    key, token = make_key(org)
    api_key_rotate(key=key, actor=Actor.system("test"), grace_period=0)
    assert [whoami(client, token).status_code for _ in range(25)] == [401] * 25
    assert whoami(client, token).json()["error"]["code"] == "expired_key"


def test_the_minute_slides_across_a_boundary(client, db, clock):
    clock.now = NOON - 1
    assert [whoami(client, made_up_token()).status_code for _ in range(20)] == [401] * 20
    clock.now = NOON + 1
    assert whoami(client, made_up_token()).status_code == 429
    clock.now = NOON + 125
    assert whoami(client, made_up_token()).status_code == 401


def test_an_ipv6_client_is_counted_by_its_64(client, db, clock):
    for i in range(20):
        assert (
            whoami(client, made_up_token(), address=f"2001:db8:1:2::{i + 1:x}").status_code == 401
        )
    assert whoami(client, made_up_token(), address="2001:db8:1:2:ffff::9").status_code == 429
    assert whoami(client, made_up_token(), address="2001:db8:1:3::1").status_code == 401


def test_the_guard_is_shared_through_redis(redis_cache, clock):
    """Two processes count in their own memory; what their senders bring back is shared."""
    one, two = InvalidKeyGuard(), InvalidKeyGuard()
    one.cache = two.cache = redis_cache
    waits = []
    for i in range(21):
        waits.append((one if i % 2 else two).failed("192.0.2.1"))
        if i % 4 == 3:  # the background senders' turn
            one.send()
            two.send()
    assert waits[:20] == [None] * 20
    assert waits[20] is not None
    one.send()
    two.send()
    assert one.failed("192.0.2.1") is not None  # both refuse once they have heard


def test_before_the_counts_meet_each_process_holds_its_own_limit(redis_cache, clock):
    """The bound until a send: at most 20 past the limit per process, within one interval."""
    one, two = InvalidKeyGuard(), InvalidKeyGuard()
    one.cache = two.cache = redis_cache
    assert [one.failed("192.0.2.2") for _ in range(20)] == [None] * 20
    assert [two.failed("192.0.2.2") for _ in range(20)] == [None] * 20  # not heard yet
    assert one.failed("192.0.2.2") is not None
    assert two.failed("192.0.2.2") is not None
    one.send()
    two.send()
    three = InvalidKeyGuard()
    three.cache = redis_cache
    three.send()  # a third process has nothing to send and hears nothing yet …
    assert three.failed("192.0.2.2") is None  # … so its first failure goes through …
    three.send()
    assert three.failed("192.0.2.2") is not None  # … and once it heard, it refuses


@pytest.mark.parametrize(
    ("address", "offender"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("not an address", None),
        (None, None),
    ],
)
def test_offender_of(address, offender):
    assert offender_of(address) == offender


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "wait"),
    [
        (0, 21, 0, 60 + 3),  # next window: 21 fades below 20 after 60/21 s
        (0, 40, 30, 30 + 30),  # next window: 40 fades to 20 half-way through
        (20, 10, 0, 30),  # this window: the previous 20 must fade to 10
    ],
)
def test_seconds_until_allowed(previous, current, elapsed, wait):
    assert seconds_until_allowed(previous, current, elapsed, 60, 20) == wait


def test_failures_are_written_once_their_minute_is_over(client, db, clock):
    for _ in range(3):
        whoami(client, made_up_token(), address="192.0.2.10")
    whoami(client, made_up_token(), address="192.0.2.11")
    assert failed_attempts.flush() == 0
    assert not FailedKeyAttempts.objects.exists()
    clock.now += 60
    whoami(client, made_up_token(), address="192.0.2.10")
    assert failed_attempts.flush() == 4
    rows = dict(FailedKeyAttempts.objects.values_list("address", "count"))
    assert rows == {"192.0.2.10": 3, "192.0.2.11": 1}
    assert failed_attempts.flush(everything=True) == 1
    minutes = FailedKeyAttempts.objects.filter(address="192.0.2.10").order_by("minute")
    assert [row.count for row in minutes] == [3, 1]


def test_topoffenders_lists_the_top_addresses_of_the_last_hour(db):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    FailedKeyAttempts.objects.create(
        address="192.0.2.1", minute=now - timedelta(minutes=5), count=40
    )
    FailedKeyAttempts.objects.create(
        address="192.0.2.1", minute=now - timedelta(minutes=4), count=2
    )
    FailedKeyAttempts.objects.create(address="2001:db8::/64", minute=now, count=7)
    FailedKeyAttempts.objects.create(
        address="198.51.100.9", minute=now - timedelta(hours=3), count=99
    )
    out = StringIO()
    call_command("topoffenders", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["ADDRESS", "INVALID", "KEYS", "LAST", "SEEN", "(UTC)"]
    assert [line.split()[:2] for line in lines[1:]] == [["192.0.2.1", "42"], ["2001:db8::/64", "7"]]
    out = StringIO()
    call_command("topoffenders", "--hours", "4", "--limit", "1", stdout=out)
    assert out.getvalue().splitlines()[1].split()[:2] == ["198.51.100.9", "99"]


@pytest.mark.parametrize(
    "args", [["--hours", "0"], ["--hours", "x"], ["--hours", "9999"], ["--limit", "-1"]]
)
def test_topoffenders_refuses_bad_arguments(db, args):
    with pytest.raises(CommandError):
        call_command("topoffenders", *args)
