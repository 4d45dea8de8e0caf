import threading
import time
from datetime import UTC, date, datetime
from unittest import mock

import pytest
from django.core.cache.backends.redis import RedisCache
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apikeys import usage
from apikeys.authentication import APIKeyAuthentication
from apikeys.models import APIKey, KeyUsageDay
from apikeys.services import api_key_revoke
from apikeys.usage import UsageCounter, usage_counter
from audit.actors import Actor
from conftest import on_postgres


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def days_of(key) -> dict[date, int]:
    return dict(KeyUsageDay.objects.filter(key=key).values_list("day", "count"))


@pytest.fixture(params=["local", "redis"])
def counter_cache(request, monkeypatch):
    """Run a test with usage gathered in this process, then again in a shared Redis."""
    if request.param == "local":
        from django.core.cache.backends.locmem import LocMemCache

        cache = LocMemCache("usage-test", {})
    else:
        cache = request.getfixturevalue("redis_cache")
    monkeypatch.setattr(UsageCounter, "cache", cache)
    return cache


def test_requests_are_counted_without_a_write_and_written_by_the_flush(
    api, org, make_key, counter_cache
):
    key, token = make_key(org, scopes=["keys:read"])
    client = api(token)
    assert client.get("/api/v1/whoami").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        for _ in range(9):
            assert client.get("/api/v1/whoami").status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    assert writes == []
    key.refresh_from_db()
    assert key.usage_count == 0
    assert usage_counter.flush() == 10
    key.refresh_from_db()
    assert key.usage_count == 10
    assert days_of(key) == {datetime.now(UTC).date(): 10}
    assert usage_counter.flush() == 0
    key.refresh_from_db()
    assert key.usage_count == 10


def test_counts_go_to_the_utc_day_they_happened_on(org, make_key, counter_cache, monkeypatch):
    key, _ = make_key(org)
    monkeypatch.setattr(UsageCounter, "clock", staticmethod(lambda: at("2026-03-01T23:59:59")))
    usage_counter.record(key.pk)
    usage_counter.record(key.pk)
    monkeypatch.setattr(UsageCounter, "clock", staticmethod(lambda: at("2026-03-02T00:00:01")))
    usage_counter.record(key.pk)
    usage_counter.flush()
    usage_counter.record(key.pk)
    usage_counter.flush()
    key.refresh_from_db()
    assert key.usage_count == 4
    assert days_of(key) == {date(2026, 3, 1): 2, date(2026, 3, 2): 2}


def test_a_failed_write_keeps_the_counts_for_the_next_flush(org, make_key, counter_cache):
    key, _ = make_key(org)
    for _ in range(3):
        usage_counter.record(key.pk)
    with mock.patch.object(usage, "api_key_usage_add", side_effect=RuntimeError("db down")):
        assert usage_counter.flush() == 0
    assert sum(usage_counter.pending().values()) == 3
    assert usage_counter.flush() == 3
    key.refresh_from_db()
    assert key.usage_count == 3


def test_counts_of_an_unknown_key_are_dropped_without_breaking_the_flush(
    org, make_key, counter_cache
):
    key, _ = make_key(org)
    usage_counter.record("AAAAAAAAAAAA")
    usage_counter.record(key.pk)
    assert usage_counter.flush() == 2
    key.refresh_from_db()
    assert key.usage_count == 1
    assert KeyUsageDay.objects.count() == 1


def test_an_unreachable_redis_counts_in_the_process_instead(org, make_key, monkeypatch):
    key, _ = make_key(org)
    dead = RedisCache("redis://127.0.0.1:18599/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})
    monkeypatch.setattr(UsageCounter, "cache", dead)
    for _ in range(4):
        usage_counter.record(key.pk)
    assert usage_counter.flush() == 4
    key.refresh_from_db()
    assert key.usage_count == 4


def test_two_processes_flushing_one_redis_never_write_a_count_twice(org, make_key, redis_cache):
    key, _ = make_key(org)
    one, two = UsageCounter(), UsageCounter()
    one.cache = two.cache = redis_cache
    for _ in range(500):
        (one if _ % 2 else two).record(key.pk)
    assert one.send() + two.send() == 500  # both processes' counts meet in the Redis hash
    written = []
    barrier = threading.Barrier(2)

    def flush(counter):
        barrier.wait()
        written.append(counter._take_shared())

    threads = [threading.Thread(target=flush, args=(c,)) for c in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sum(c.values()) for c in written) == [0, 500]


@pytest.mark.django_db(transaction=True)
def test_eight_threads_of_250_requests_count_exactly_2000(make_org, make_key, counter_cache):
    organization = make_org()
    key, token = make_key(organization, scopes=["keys:read"])
    # Warm the key (verified-key cache, last_used_at), then start from zero: the
    # threads then measure counting alone.
    assert (
        APIClient().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    )
    usage_counter.flush()
    APIKey.objects.filter(pk=key.pk).update(usage_count=0)
    KeyUsageDay.objects.filter(key=key).delete()
    failures = []
    stop = threading.Event()

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            for _ in range(250):
                status = client.get("/api/v1/whoami").status_code
                if status != 200:
                    failures.append(status)
        finally:
            connection.close()

    def flush_meanwhile(counter):
        try:
            while not stop.is_set():
                counter.flush()
                time.sleep(0.01)
        finally:
            connection.close()

    # This process's counter, and another process's one (sharing only the Redis hash),
    # flushing while the requests run. Not on SQLite: its shared in-memory test
    # database answers a writer next to other connections with "locked".
    flushers = [
        threading.Thread(target=flush_meanwhile, args=(counter,))
        for counter in (usage_counter, UsageCounter())
        if on_postgres()
    ]
    senders = [threading.Thread(target=send) for _ in range(8)]
    for thread in flushers + senders:
        thread.start()
    for thread in senders:
        thread.join()
    stop.set()
    for thread in flushers:
        thread.join()
    usage_counter.flush()
    assert failures == []
    key.refresh_from_db()
    assert key.usage_count == 2000
    assert sum(days_of(key).values()) == 2000


@pytest.mark.django_db(transaction=True)
@override_settings(KEYWARD_USAGE_FLUSH_SECONDS=0.2)
def test_the_background_thread_writes_within_five_seconds(make_org, make_key):
    organization = make_org()
    key, _ = make_key(organization)
    APIKeyAuthentication.usage.record(key.pk)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if APIKey.objects.get(pk=key.pk).usage_count == 1:
            break
        time.sleep(0.05)
    assert APIKey.objects.get(pk=key.pk).usage_count == 1
    usage.flusher.stop()


@pytest.mark.django_db(transaction=True)
def test_a_flush_and_a_revoke_of_the_same_key_take_turns_instead_of_deadlocking(org, make_key):
    # The load run (bench/load.py) once saw the revoke answer 503: the flush held the
    # key's row and, at COMMIT, waited for the organisation (the daily rows' foreign key
    # is checked then), which the revoke held while it waited for the key's row.
    if not on_postgres():
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises every write")
    key, _ = make_key(org)
    today = date.today()
    flushed, revoking, errors = threading.Event(), threading.Event(), []

    def flush():
        try:
            with transaction.atomic():  # hold the flush's locks until the revoke waits
                usage.api_key_usage_add(counts={(key.pk, today): 3})
                flushed.set()
                revoking.wait(5)
                time.sleep(0.5)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def revoke():
        flushed.wait(5)
        revoking.set()
        try:
            api_key_revoke(key=APIKey.objects.get(pk=key.pk), actor=Actor.system("test"))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=flush), threading.Thread(target=revoke)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.usage_count == 3


def test_a_count_given_back_after_its_flush_lowers_what_was_written(org, make_key):
    key, _ = make_key(org)
    other, _ = make_key(org)
    day = date(2026, 3, 2)
    usage.api_key_usage_add(counts={(key.pk, day): 2})
    # A refused request's +1 went out in one flush and its -1 (apikeys/roundtrip.py) in the next.
    usage.api_key_usage_add(counts={(key.pk, day): -1, (other.pk, day): -1})
    key.refresh_from_db()
    other.refresh_from_db()
    assert (key.usage_count, days_of(key)) == (1, {day: 1})
    assert (other.usage_count, days_of(other)) == (0, {})
