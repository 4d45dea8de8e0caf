"""Email notices and the events raised by periodic jobs: expiry, expired, invalid-key spikes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apikeys import tokens
from apikeys.models import APIKey
from apikeys.refusals import key_refused
from apikeys.services import api_key_rotate
from config.errors import ExpiredKey, InvalidKey
from events.jobs import invalid_key_spike, key_notices
from events.models import Event, KeyRefusalCount, Notice
from events.refusals import tally
from events.tests.conftest import SYSTEM
from events.tests.receiver import verified
from orgs.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


def _expiring_in(make_key, org, delta, *, age=timedelta(days=30), **fields):
    key, _ = make_key(org, **fields)
    now = timezone.now()
    APIKey.objects.filter(pk=key.pk).update(created_at=now - age, expires_at=now + delta)
    key.refresh_from_db()
    return key


def test_a_key_seven_days_from_expiry_is_announced_once_by_email_and_webhook(
    org, owner, add_member, make_key, make_endpoint, receiver, drain
):
    admin = add_member(org, Role.ADMIN)
    add_member(org, Role.MEMBER)
    _, secret = make_endpoint(org, receiver.url, events=["api_key.expiring"])
    key = _expiring_in(make_key, org, timedelta(days=6, hours=23), name="Nightly export")
    _expiring_in(make_key, org, timedelta(days=8), name="Later")  # not yet
    assert key_notices()["expiring_7d"] == 1
    assert key_notices()["expiring_7d"] == 0  # once per key and threshold
    drain()
    [message] = mail.outbox
    assert sorted(message.to) == sorted([owner.email, admin.email])  # an organisation key
    assert "Nightly export" in message.subject and "in 7 days" in message.subject
    assert key.prefix in message.body and "&" not in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "<strong>Nightly export</strong>" in html
    [request] = receiver.wait_for(1)
    payload = verified(request, secret)
    assert payload["type"] == "api_key.expiring"
    assert payload["data"]["threshold"] == "7d" and payload["data"]["reason"] == "expiry"
    assert payload["data"]["key"]["id"] == key.id
    assert payload["data"]["actor"]["type"] == "system"


def test_one_day_before_a_personal_key_expires_its_owner_alone_hears(
    org, add_member, make_key, drain
):
    person = add_member(org, Role.ADMIN)
    key = _expiring_in(make_key, org, timedelta(hours=20), owner=person, actor=person)
    sent = key_notices()
    assert (sent["expiring_7d"], sent["expiring_1d"]) == (0, 1)  # the most urgent only
    drain()
    [message] = mail.outbox
    assert message.to == [person.email]
    assert Notice.objects.get(subject=key.pk).slot == "1d"


def test_a_key_made_to_live_less_than_a_threshold_is_not_warned_about_it(org, make_key):
    _expiring_in(make_key, org, timedelta(hours=20), age=timedelta(hours=1))
    assert key_notices()["expiring_1d"] == 0


def test_an_hour_before_a_rotation_grace_period_ends(org, make_key, drain):
    old, _ = make_key(org, name="Rotated")
    new, _, old = api_key_rotate(key=old, actor=SYSTEM, grace_period=24 * 3600)
    now = timezone.now()
    APIKey.objects.filter(pk=new.pk).update(created_at=now - timedelta(hours=23, minutes=30))
    APIKey.objects.filter(pk=old.pk).update(expires_at=now + timedelta(minutes=30))
    sent = key_notices()
    assert sent["expiring_1h"] == 1 and sent["expiring_1d"] == 0
    drain()
    [message] = mail.outbox
    assert "in 1 hour" in message.subject and new.id in message.body


def test_an_expired_key_is_announced_but_not_the_old_key_of_a_rotation_without_grace(
    org, make_key, drain
):
    expired = _expiring_in(make_key, org, timedelta(minutes=-5), name="Old one")
    rotated, _ = make_key(org, name="Rotated now")
    api_key_rotate(key=rotated, actor=SYSTEM, grace_period=0)
    assert key_notices()["expired"] == 1
    assert key_notices()["expired"] == 0
    drain()
    [message] = mail.outbox
    assert "Old one" in message.subject and "has expired" in message.subject
    event = Event.objects.get(type="api_key.expired")
    assert json.loads(event.body)["data"]["key"]["status"] == "expired"
    assert event.key_id == expired.pk


def test_the_policy_switch_turns_emails_off_but_not_webhooks(
    org, make_key, make_endpoint, receiver, drain
):
    from orgs.services import organization_update

    organization_update(organization=org, actor=SYSTEM, email_notices=False)
    _, secret = make_endpoint(org, receiver.url, events=["api_key.expiring"])
    _expiring_in(make_key, org, timedelta(days=6))
    assert key_notices()["expiring_7d"] == 1
    drain()
    assert mail.outbox == []
    assert Notice.objects.get().state == "suppressed"
    assert verified(receiver.wait_for(1)[0], secret)["type"] == "api_key.expiring"
    assert key_notices()["expiring_7d"] == 0  # the threshold is spent even so


def _refuse(api, key, times):
    """Present the key's id with wrong secrets, from many addresses (as a botnet would)."""
    for n in range(times):
        wrong = tokens.generate(key.environment, key_id=key.id).token  # right id, wrong secret
        response = api(wrong).get("/api/v1/whoami", REMOTE_ADDR=f"198.51.100.{n % 250 + 1}")
        assert response.status_code == 401


def test_an_invalid_key_spike_is_raised_once_an_hour(
    org, owner, make_key, make_endpoint, receiver, drain, api
):
    _, secret = make_endpoint(org, receiver.url, events=["security.invalid_key_spike"])
    key, _ = make_key(org, name="Payments")
    _refuse(api, key, 15)
    tally.flush()
    assert invalid_key_spike() == {"spikes": 0}  # 15 is not more than 20
    _refuse(api, key, 6)
    # Made-up key ids are noise of another kind (the per-address guard): not counted here.
    for n in range(30):
        made_up = tokens.generate("live").token
        api(made_up).get("/api/v1/whoami", REMOTE_ADDR=f"203.0.113.{n + 1}")
    tally.flush()
    assert sum(KeyRefusalCount.objects.values_list("count", flat=True)) == 21
    assert invalid_key_spike() == {"spikes": 1}
    _refuse(api, key, 25)
    tally.flush()
    assert invalid_key_spike() == {"spikes": 0}  # at most one an hour
    drain()
    [message] = mail.outbox
    assert message.to == [owner.email] and "Payments" in message.body
    payload = verified(receiver.wait_for(1)[0], secret)
    assert payload["type"] == "security.invalid_key_spike"
    assert payload["data"]["refusals"] == 21
    assert payload["data"]["keys"][0]["id"] == key.id
    assert payload["data"]["window_seconds"] == 600


def test_revoked_and_expired_keys_count_towards_a_spike(org, make_key, api):
    from apikeys.services import api_key_revoke

    revoked, revoked_token = make_key(org)
    api_key_revoke(key=revoked, actor=SYSTEM)
    expired, expired_token = make_key(org)
    APIKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    for n in range(11):
        address = {"REMOTE_ADDR": f"198.51.100.{n + 1}"}
        assert api(revoked_token).get("/api/v1/whoami", **address).status_code == 401
        assert api(expired_token).get("/api/v1/whoami", **address).status_code == 401
    assert sum(tally.pending().values()) == 22
    tally.flush()
    assert invalid_key_spike() == {"spikes": 1}


def test_counting_a_refusal_costs_no_query(org, make_key, django_assert_num_queries):
    from apikeys.cache import verified_keys

    key, _ = make_key(org)
    verified_keys.remember_organization(key.id, org.pk)

    class Request:
        META = {"HTTP_AUTHORIZATION": f"Bearer {tokens.generate('live', key_id=key.id).token}"}

    with django_assert_num_queries(0):
        for _ in range(50):
            key_refused(Request(), InvalidKey())
            key_refused(Request(), ExpiredKey())
    assert sum(tally.pending().values()) == 100
