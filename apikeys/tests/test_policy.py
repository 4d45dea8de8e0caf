from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import APIKey
from apikeys.services import api_key_create, api_key_rotate, api_key_update
from audit.actors import Actor
from audit.models import AuditEvent
from config.errors import Forbidden, ValidationFailed
from orgs.models import Organization
from orgs.roles import Role
from orgs.services import organization_update

SYSTEM = Actor.system("test")


def org_updates(organization):
    return AuditEvent.objects.filter(organization=organization, action="org.updated")


def test_members_create_personal_keys_only_where_the_organisation_allows(org, add_member):
    member = add_member(org, Role.MEMBER)
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=member, name="mine", owner=member)
    organization_update(organization=org, actor=SYSTEM, members_can_create_keys=True)
    key, _ = api_key_create(organization=org, actor=member, name="mine", owner=member)
    assert key.owner == member
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=member, name="org key")


def test_the_lifetime_cap_bounds_create_rotate_and_update(make_org, make_key):
    organization = make_org(max_key_lifetime_days=30)
    now = timezone.now()
    key, _ = make_key(organization)
    assert now + timedelta(days=29) < key.expires_at <= now + timedelta(days=30, seconds=5)
    with pytest.raises(ValidationFailed) as error:
        make_key(organization, expires_at=now + timedelta(days=31))
    assert "expires_at" in error.value.extra["fields"]
    with pytest.raises(ValidationFailed) as error:
        api_key_update(key=key, actor=SYSTEM, expires_at=now + timedelta(days=45))
    assert "expires_at" in error.value.extra["fields"]
    organization_update(organization=organization, actor=SYSTEM, max_key_lifetime_days=None)
    organization.refresh_from_db()
    long_lived, _ = make_key(organization, expires_at=now + timedelta(days=400))
    organization_update(organization=organization, actor=SYSTEM, max_key_lifetime_days=10)
    new, _, _ = api_key_rotate(key=long_lived, actor=SYSTEM)
    assert new.expires_at <= timezone.now() + timedelta(days=10, seconds=5)


def test_a_policy_change_is_audited_with_before_and_after(org):
    organization_update(
        organization=org, actor=SYSTEM, daily_request_quota=1000, default_rate_limit="10/s"
    )
    event = org_updates(org).get()
    assert event.changes["daily_request_quota"] == {"before": None, "after": 1000}
    assert event.changes["default_rate_limit"] == {"before": None, "after": "10/s"}


BAD_POLICY = [
    ("default_rate_limit", "0/min"),
    ("default_rate_limit", "10/fortnight"),
    ("default_rate_limit", "-5/s"),
    ("default_rate_limit", "abc"),
    ("default_rate_limit", 5),
    ("daily_request_quota", -1),
    ("daily_request_quota", 0),
    ("daily_request_quota", "lots"),
    ("daily_request_quota", 1.5),
    ("max_key_lifetime_days", -30),
    ("max_key_lifetime_days", 0),
    ("max_key_lifetime_days", 100000),
    ("members_can_create_keys", "yes"),
]


@pytest.mark.parametrize(("field", "value"), BAD_POLICY)
def test_bad_policy_values_name_the_field_and_save_nothing(org, field, value):
    before = Organization.objects.values().get(pk=org.pk)
    with pytest.raises(ValidationFailed) as error:
        organization_update(organization=org, actor=SYSTEM, **{field: value})
    assert error.value.code == "validation_error"
    assert error.value.status == 400
    assert list(error.value.extra["fields"]) == [field]
    assert Organization.objects.values().get(pk=org.pk) == before
    assert not org_updates(org).exists()


def test_one_bad_field_saves_none_of_the_good_ones(org):
    with pytest.raises(ValidationFailed):
        organization_update(
            organization=org, actor=SYSTEM, daily_request_quota=50, default_rate_limit="abc"
        )
    org.refresh_from_db()
    assert org.daily_request_quota is None


@pytest.mark.parametrize("rate", ["0/min", "10/fortnight", "-5/s", "abc", "5/ min", 5])
def test_bad_key_rates_are_refused_over_the_api_and_nothing_is_saved(api, org, make_key, rate):
    _, token = make_key(org, scopes=["keys:read", "keys:write"])
    target, _ = make_key(org, rate_limit="1/s")
    before = APIKey.objects.count()
    client = api(token)
    created = client.post("/api/v1/keys", {"name": "ci", "rate_limit": rate}, format="json")
    patched = client.patch(f"/api/v1/keys/{target.pk}", {"rate_limit": rate}, format="json")
    for response in (created, patched):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"
        assert list(response.json()["error"]["fields"]) == ["rate_limit"]
    assert APIKey.objects.count() == before
    target.refresh_from_db()
    assert target.rate_limit == "1/s"


@pytest.mark.parametrize("rate", ["1/s", "600/min", "5000/h", "100000/day"])
def test_good_key_rates_are_kept(api, org, make_key, rate):
    _, token = make_key(org, scopes=["keys:write"])
    response = api(token).post("/api/v1/keys", {"name": "ci", "rate_limit": rate}, format="json")
    assert response.status_code == 201
    assert response.json()["key"]["rate_limit"] == rate
