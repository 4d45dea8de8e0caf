from datetime import UTC, datetime, timedelta

import pytest

from apikeys.models import KeyUsageDay
from apikeys.services import api_key_revoke
from apikeys.throttling import DailyQuotaThrottle
from apikeys.usage import usage_counter
from audit.actors import Actor
from orgs.roles import Role

SYSTEM = Actor.system("test")


def today():
    return datetime.now(UTC).date()


def test_usage_needs_the_usage_read_scope(api, org, make_key):
    _, token = make_key(org, scopes=["keys:read"])
    response = api(token).get("/api/v1/usage")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response.json()["error"]["required_scopes"] == ["usage:read"]


def test_usage_shows_each_key_by_day_with_quota_and_limits(api, make_org, make_key):
    organization = make_org(daily_request_quota=100, default_rate_limit="50/min")
    reader, token = make_key(organization, scopes=["usage:read"])
    limited, _ = make_key(organization, rate_limit="5/s", environment="test")
    KeyUsageDay.objects.create(
        organization=organization, key=limited, day=today() - timedelta(days=3), count=7
    )
    KeyUsageDay.objects.create(
        organization=organization, key=limited, day=today() - timedelta(days=30), count=99
    )
    client = api(token)
    for _ in range(2):
        assert client.get("/api/v1/usage").status_code == 200
    usage_counter.flush()
    body = client.get("/api/v1/usage").json()

    assert body["organization"]["slug"] == organization.slug
    assert body["time_zone"] == "UTC"
    assert body["to"] == today().isoformat()
    assert body["from"] == (today() - timedelta(days=29)).isoformat()
    assert body["today"] == {"date": today().isoformat(), "requests": 2, "live_requests": 2}
    assert body["quota"]["daily_limit"] == 100
    assert body["quota"]["used"] == 3
    assert body["quota"]["remaining"] == 97
    assert body["quota"]["resets_at"] == f"{(today() + timedelta(days=1)).isoformat()}T00:00:00Z"
    assert body["default_rate_limit"] == "50/min"

    rows = {row["id"]: row for row in body["keys"]}
    assert list(rows) == [limited.pk, reader.pk]
    assert rows[reader.pk]["rate_limit"] == {
        "rate": "50/min",
        "limit": 50,
        "period_seconds": 60,
        "source": "organization",
    }
    assert rows[limited.pk]["rate_limit"]["source"] == "key"
    assert rows[limited.pk]["rate_limit"]["rate"] == "5/s"
    assert rows[reader.pk]["usage_count"] == 2
    assert len(rows[limited.pk]["days"]) == 30
    assert rows[limited.pk]["days"][-4] == {
        "date": (today() - timedelta(days=3)).isoformat(),
        "requests": 7,
    }
    assert rows[limited.pk]["requests"] == 7  # the day 30 days ago is outside the period
    assert rows[reader.pk]["days"][-1]["requests"] == 2


def test_without_quota_or_limits_they_are_null(api, org, make_key):
    _, token = make_key(org, scopes=["usage:read"])
    body = api(token).get("/api/v1/usage").json()
    assert body["quota"] is None
    assert body["default_rate_limit"] is None
    assert body["keys"][0]["rate_limit"] is None


def test_usage_stays_inside_the_organisation_and_the_callers_keys(
    api, org, make_org, make_key, add_member
):
    other, _ = make_key(make_org())
    organization_key, _ = make_key(org)
    member = add_member(org, Role.ADMIN)
    personal, token = make_key(org, owner=member, scopes=["usage:read"])
    body = api(token).get("/api/v1/usage").json()
    ids = {row["id"] for row in body["keys"]}
    assert personal.pk in ids
    assert organization_key.pk in ids  # an admin's personal key sees every key
    assert other.pk not in ids


def test_a_personal_key_of_a_member_sees_only_its_own_keys(api, org, make_key, add_member):
    from orgs.services import organization_update

    organization_update(organization=org, actor=SYSTEM, members_can_create_keys=True)
    make_key(org)
    member = add_member(org, Role.MEMBER)
    personal, token = make_key(org, owner=member, scopes=["usage:read"])
    body = api(token).get("/api/v1/usage").json()
    assert [row["id"] for row in body["keys"]] == [personal.pk]


def test_finished_keys_appear_only_with_usage_in_the_period(api, org, make_key):
    _, token = make_key(org, scopes=["usage:read"])
    quiet, _ = make_key(org)
    busy, _ = make_key(org)
    KeyUsageDay.objects.create(organization=org, key=busy, day=today(), count=4)
    for key in (quiet, busy):
        api_key_revoke(key=key, actor=SYSTEM)
    ids = [row["id"] for row in api(token).get("/api/v1/usage").json()["keys"]]
    assert busy.pk in ids
    assert quiet.pk not in ids


@pytest.mark.parametrize("used", [0, 5, 9])
def test_quota_figures_follow_the_counter(api, make_org, make_key, used, monkeypatch):
    organization = make_org(daily_request_quota=10)
    _, token = make_key(organization, scopes=["usage:read"], environment="test")
    monkeypatch.setattr(DailyQuotaThrottle, "used", lambda self, organization: used)
    quota = api(token).get("/api/v1/usage").json()["quota"]
    assert (quota["used"], quota["remaining"]) == (used, 10 - used)


def test_usage_pages_its_keys_and_counts_today_over_all_of_them(org, make_key, api):
    _, token = make_key(org, scopes=["usage:read"], name="reader")
    made = [make_key(org, name=f"k{i}")[0] for i in range(3)]
    for key in made:
        KeyUsageDay.objects.create(organization=org, key=key, day=today(), count=5)
    first = api(token).get("/api/v1/usage?limit=2").json()
    assert len(first["keys"]) == 2 and first["next"]
    assert first["today"]["requests"] == 15
    second = api(token).get(first["next"]).json()
    seen = [row["id"] for row in first["keys"] + second["keys"]]
    assert set(seen) >= {key.pk for key in made}
    assert len(seen) == len(set(seen))
    assert second["today"]["requests"] == 15
