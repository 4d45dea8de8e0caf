"""Key activity: per key and hour, the addresses, routes and outcomes of its requests."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apikeys import tokens
from apikeys.activity import MAX_ADDRESSES, key_activity, key_activity_add
from apikeys.models import APIKey, KeyActivity
from apikeys.services import api_key_revoke
from audit.actors import Actor
from orgs.models import Membership
from orgs.roles import Role


def call(client, token, path="/api/v1/whoami", address="198.51.100.1"):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


def rows(key):
    return {
        (row.address, row.route, row.outcome): row.count
        for row in KeyActivity.objects.filter(key=key)
    }


def test_allowed_and_refused_requests_are_counted_by_address_route_and_outcome(
    client, org, make_key
):
    key, token = make_key(org, scopes=["keys:read"])
    other, _ = make_key(org)
    call(client, token)
    call(client, token)
    call(client, token, f"/api/v1/keys/{other.id}", address="203.0.113.9")
    call(client, token, "/api/v1/audit-events", address="203.0.113.9")  # missing scope
    wrong_secret = tokens.generate("live", key_id=key.id).token
    call(client, wrong_secret, address="192.0.2.66")
    assert not KeyActivity.objects.exists()  # nothing is written per request
    assert key_activity.flush() == 5
    assert rows(key) == {
        ("198.51.100.1", "/api/v1/whoami", "allowed"): 2,
        ("203.0.113.9", "/api/v1/keys/{key_id}", "allowed"): 1,
        ("203.0.113.9", "/api/v1/audit-events", "missing_scope"): 1,
        ("192.0.2.66", "/api/v1/whoami", "invalid_key"): 1,
    }
    assert rows(other) == {}  # the key in the path is not the key that called


def test_revoked_and_expired_keys_are_counted_with_their_codes(client, org, make_key):
    key, token = make_key(org)
    expiring, expiring_token = make_key(org, expires_at=timezone.now() + timedelta(hours=1))
    api_key_revoke(key=key, actor=Actor.system("test"))
    APIKey.objects.filter(pk=expiring.pk).update(expires_at=timezone.now())
    call(client, token)
    call(client, expiring_token)
    key_activity.flush()
    assert rows(key) == {("198.51.100.1", "/api/v1/whoami", "invalid_key"): 1}
    assert rows(expiring) == {("198.51.100.1", "/api/v1/whoami", "expired_key"): 1}


def test_unknown_keys_and_requests_without_a_key_leave_no_activity(client, db):
    call(client, tokens.generate("live").token)
    client.get("/api/v1/whoami")
    client.get("/healthz")
    assert key_activity.flush() == 0
    assert not KeyActivity.objects.exists()


def test_at_most_100_addresses_per_key_and_hour_the_rest_under_other(client, org, make_key):
    key, token = make_key(org)
    for n in range(MAX_ADDRESSES + 20):
        call(client, token, address=f"10.0.{n // 250}.{n % 250}")
    key_activity.flush()
    # A second process's batch for the same hour: the cap holds across processes too.
    hour = int(timezone.now().timestamp()) // 3600
    key_activity_add(counts={(key.id, hour, "192.0.2.200", "/api/v1/whoami", "allowed"): 3})
    addresses = {address for address, _route, _outcome in rows(key)}
    assert len(addresses - {"other"}) == MAX_ADDRESSES
    assert sum(count for (address, *_), count in rows(key).items() if address == "other") == 23
    assert sum(rows(key).values()) == MAX_ADDRESSES + 23


def test_rows_older_than_30_days_are_pruned_when_activity_is_written(org, make_key):
    key, _token = make_key(org)
    old = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=31)
    KeyActivity.objects.create(
        key=key, hour=old, address="192.0.2.1", route="/x", outcome="allowed", count=1
    )
    key_activity._pruned_at = 0
    key_activity.flush()
    assert not KeyActivity.objects.filter(hour=old).exists()


def test_the_activity_api_pages_and_filters(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago in range(5):
        KeyActivity.objects.create(
            key=key,
            hour=now - timedelta(hours=hours_ago),
            address=f"192.0.2.{hours_ago}",
            route="/api/v1/whoami",
            outcome="allowed",
            count=hours_ago + 1,
        )
    url = f"/api/v1/keys/{key.id}/activity"
    first = call(client, token, f"{url}?limit=2").json()
    assert [row["address"] for row in first["results"]] == ["192.0.2.0", "192.0.2.1"]
    assert set(first["results"][0]) == {"hour", "address", "route", "outcome", "count"}
    second = client.get(first["next"], HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert [row["address"] for row in second["results"]] == ["192.0.2.2", "192.0.2.3"]
    since = (now - timedelta(hours=1)).isoformat()
    filtered = client.get(url, {"since": since}, HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert {row["address"] for row in filtered["results"]} == {"192.0.2.0", "192.0.2.1"}
    until = (now - timedelta(hours=3)).isoformat()
    filtered = client.get(url, {"until": until}, HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert {row["address"] for row in filtered["results"]} == {"192.0.2.4"}


@pytest.mark.parametrize(
    "query",
    ["since=yesterday", "until=9999-99-99", "since=2030-01-02&until=2030-01-01", "limit=0"],
)
def test_bad_activity_filters_are_400(client, org, make_key, query):
    key, token = make_key(org, scopes=["keys:read"])
    response = call(client, token, f"/api/v1/keys/{key.id}/activity?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_the_activity_api_needs_keys_read_and_stays_in_the_organisation(
    client, org, make_org, make_key
):
    key, _token = make_key(org)
    _narrow, narrow_token = make_key(org, scopes=["usage:read"])
    response = call(client, narrow_token, f"/api/v1/keys/{key.id}/activity")
    assert response.json()["error"]["code"] == "missing_scope"
    _stranger, stranger_token = make_key(make_org(), scopes=["keys:read"])
    assert call(client, stranger_token, f"/api/v1/keys/{key.id}/activity").status_code == 404


def test_the_key_page_shows_addresses_and_routes(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    call(client, token, address="203.0.113.77")
    call(client, tokens.generate("live", key_id=key.id).token, address="192.0.2.66")
    key_activity.flush()
    person = Client()
    person.force_login(Membership.objects.get(organization=org, role=Role.OWNER).user)
    page = person.get(f"/orgs/{org.slug}/settings/api-keys/{key.id}/").content.decode()
    assert "Activity, last 30 days" in page
    assert "203.0.113.77" in page and "192.0.2.66" in page
    assert "/api/v1/whoami" in page and "invalid_key" in page
