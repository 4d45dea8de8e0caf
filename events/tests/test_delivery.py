"""Deliveries to a real HTTP receiver, each verified by the reference `standardwebhooks`.

The framework's own worker loop (django-tasks-db's `Worker`) runs the tasks in this
process; the receiver is http.server in a thread. Nothing here mocks the network.
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apikeys.services import api_key_revoke, api_key_update
from audit.models import AuditEvent
from events import addresses
from events.delivery import RETRY_DELAYS, deliverer, retry_after
from events.jobs import endpoint_health
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.services import webhook_endpoint_rotate_secret, webhook_endpoint_test
from events.tests.conftest import SYSTEM
from events.tests.receiver import Reply, verified
from orgs.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


def _of_type(received, event_type):
    return [r for r in received if verified_type(r) == event_type]


def verified_type(request) -> str:
    import json

    return json.loads(request.body)["type"]


def test_a_revoke_is_delivered_and_verified_by_standardwebhooks(
    org, make_key, make_endpoint, receiver, drain
):
    endpoint, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    key, token = make_key(org, name="Billing backend")
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    [request] = receiver.wait_for(1)
    payload = verified(request, secret)  # raises unless the signature verifies
    assert payload["type"] == "api_key.revoked"
    assert payload["id"] == request.headers["webhook-id"]
    assert payload["id"].startswith("evt_")
    assert payload["organization"] == {"id": str(org.pk), "slug": org.slug}
    assert payload["data"]["key"]["id"] == key.id
    assert payload["data"]["key"]["status"] == "revoked"
    assert payload["data"]["actor"] == {"type": "system", "id": None, "label": "test"}
    assert request.headers["User-Agent"].startswith("Keyward-Webhooks/")
    assert request.headers["Content-Type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    # Never a token, a hash or the secret in what is sent.
    assert token not in request.body.decode()
    assert key.secret_hash not in request.body.decode()
    assert secret not in request.body.decode()
    assert len(request.body) < 20_000
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.state == "delivered"
    [attempt] = delivery.attempts.all()
    assert (attempt.outcome, attempt.status_code) == ("delivered", 200)
    assert attempt.latency_ms is not None and attempt.response_excerpt == '{"ok": true}'
    assert attempt.address == "127.0.0.1"


def test_a_wrong_secret_does_not_verify(org, make_key, make_endpoint, receiver, drain):
    make_endpoint(org, receiver.url, events=["api_key.revoked"])
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    [request] = receiver.wait_for(1)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


def test_every_subscribed_endpoint_gets_each_event_and_filters_hold(
    org, make_key, make_endpoint, receiver, drain
):
    _, all_secret = make_endpoint(org, receiver.url)
    _, revoked_secret = make_endpoint(
        org, receiver.url + "/only-revoked", events=["api_key.revoked"]
    )
    key, _ = make_key(org)
    api_key_update(key=key, actor=SYSTEM, name="renamed")
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    received = receiver.wait_for(4)
    by_path = {}
    for request in received:
        by_path.setdefault(request.path, []).append(request)
    assert sorted(verified(r, all_secret)["type"] for r in by_path["/hooks"]) == [
        "api_key.created",
        "api_key.revoked",
        "api_key.updated",
    ]
    assert [verified(r, revoked_secret)["type"] for r in by_path["/hooks/only-revoked"]] == [
        "api_key.revoked"
    ]


def test_member_events_name_the_person_and_roles(org, add_member, make_endpoint, receiver, drain):
    from orgs.models import Membership
    from orgs.services import membership_role_change

    _, secret = make_endpoint(org, receiver.url, events=["member.added", "member.role_changed"])
    person = add_member(org, Role.MEMBER)
    membership_role_change(
        membership=Membership.objects.get(user=person, organization=org),
        role=Role.ADMIN,
        actor=SYSTEM,
    )
    drain()
    payloads = sorted(
        (verified(r, secret) for r in receiver.wait_for(2)), key=lambda p: p["created_at"]
    )
    assert [p["type"] for p in payloads] == ["member.added", "member.role_changed"]
    assert payloads[1]["data"]["member"] == {
        "id": str(person.pk),
        "email": person.email,
        "role": "admin",
        "previous_role": "member",
    }


def test_a_500_is_retried_with_the_same_webhook_id(
    org, make_key, make_endpoint, receiver, drain, quick_retries
):
    _, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    receiver.replies = [Reply(500, b"boom"), Reply(500, b"again"), Reply(200)]
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    received = receiver.wait_for(3)
    assert len(received) == 3
    ids = {r.headers["webhook-id"] for r in received}
    assert len(ids) == 1
    for request in received:
        assert verified(request, secret)["type"] == "api_key.revoked"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempt_count) == ("delivered", 3)
    attempts = list(delivery.attempts.values_list("number", "outcome", "status_code", "error"))
    assert attempts == [
        (1, "failed", 500, "answered 500"),
        (2, "failed", 500, "answered 500"),
        (3, "delivered", 200, ""),
    ]
    assert delivery.attempts.get(number=1).response_excerpt == "boom"


def test_the_schedule_spreads_retries_over_three_days_with_jitter():
    delivery = WebhookDelivery(manual=False)
    seen = []
    for count, delay in enumerate(RETRY_DELAYS, start=1):
        delivery.attempt_count = count
        before = timezone.now()
        when = deliverer.next_attempt(delivery, answer=_answer(500))
        seen.append(when - before)
        assert delay * 0.89 <= when - before <= delay * 1.11 + timedelta(seconds=1)
    delivery.attempt_count = len(RETRY_DELAYS) + 1
    assert deliverer.next_attempt(delivery, answer=_answer(500)) is None  # then failed
    assert [round(d.total_seconds() / 3600, 1) for d in seen[-3:]] == pytest.approx(
        [14, 20, 24], rel=0.12
    )
    assert len({deliverer.next_attempt(_at(1), _answer(500)) for _ in range(20)}) > 1  # jitter


def _answer(status, headers=None):
    from events.transport import Answer

    return Answer(status=status, headers=headers or {})


def _at(count):
    return WebhookDelivery(manual=False, attempt_count=count)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_on_429_and_503(status):
    now = timezone.now()
    when = deliverer.next_attempt(_at(1), _answer(status, {"retry-after": "3600"}))
    assert timedelta(minutes=59) < when - now < timedelta(minutes=61)
    # A date works too; a wait shorter than the schedule's does not shorten it.
    later = (now + timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after(later, now) > timedelta(hours=1, minutes=59)
    when = deliverer.next_attempt(_at(2), _answer(status, {"retry-after": "1"}))
    assert when - now > timedelta(minutes=4)
    # Other statuses do not get to set the pace.
    when = deliverer.next_attempt(_at(1), _answer(500, {"retry-after": "3600"}))
    assert when - now < timedelta(seconds=10)


def test_a_410_disables_the_endpoint_at_once_and_tells_the_owners(
    org, owner, make_key, make_endpoint, receiver, drain, quick_retries
):
    endpoint, _ = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    receiver.default = Reply(410, b"gone")
    first, _ = make_key(org)
    api_key_revoke(key=first, actor=SYSTEM)
    drain()
    assert len(receiver.wait_for(1)) == 1
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "gone")
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.attempt_count) == ("failed", 1)  # no retry after 410
    disabled = AuditEvent.objects.get(action="webhook.disabled")
    assert disabled.target_id == endpoint.pk and disabled.actor_type == "system"
    [message] = mail.outbox
    assert message.to == [owner.email] and endpoint.url in message.subject
    # Nothing more goes to it.
    second, _ = make_key(org)
    api_key_revoke(key=second, actor=SYSTEM)
    drain()
    time.sleep(0.3)
    assert len(receiver.received) == 1


def test_rotation_sends_two_signatures_that_both_verify(
    org, make_key, make_endpoint, receiver, drain
):
    endpoint, old_secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    endpoint, new_secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=SYSTEM)
    assert new_secret != old_secret
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    [request] = receiver.wait_for(1)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert verified(request, new_secret)["data"]["key"]["id"] == key.id
    assert verified(request, old_secret)["data"]["key"]["id"] == key.id
    # Each signature alone verifies under exactly one of the secrets.
    for sig, secret in zip(signatures, (new_secret, old_secret), strict=True):
        Webhook(secret).verify(request.body, {**request.headers, "webhook-signature": sig})
    # After the 24-hour overlap only the new secret signs.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_until=timezone.now() - timedelta(seconds=1)
    )
    other, _ = make_key(org)
    api_key_revoke(key=other, actor=SYSTEM)
    drain()
    later = receiver.wait_for(2)[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    verified(later, new_secret)
    with pytest.raises(WebhookVerificationError):
        verified(later, old_secret)


def test_an_event_of_a_rolled_back_change_is_never_sent(
    org, make_key, make_endpoint, receiver, drain
):
    _, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    doomed, _ = make_key(org, name="doomed")
    kept, _ = make_key(org, name="kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        api_key_revoke(key=doomed, actor=SYSTEM)
        raise RuntimeError("the change fails after its event was written")
    doomed.refresh_from_db()
    assert doomed.revoked_at is None
    assert not Event.objects.filter(type="api_key.revoked").exists()
    api_key_revoke(key=kept, actor=SYSTEM)
    drain()
    time.sleep(0.3)
    received = receiver.wait_for(1)
    assert [verified(r, secret)["data"]["key"]["name"] for r in received] == ["kept"]


def test_the_test_event_goes_to_one_endpoint_whatever_it_subscribes(
    org, make_endpoint, receiver, drain
):
    endpoint, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    make_endpoint(org, receiver.url + "/other")
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    drain()
    [request] = receiver.wait_for(1)
    time.sleep(0.2)
    assert len(receiver.received) == 1 and request.path == "/hooks"
    payload = verified(request, secret)
    assert payload["type"] == "webhook.test"
    assert payload["data"]["endpoint"] == {"id": endpoint.pk, "url": endpoint.url}


def test_redelivery_is_one_new_attempt_with_the_same_webhook_id(
    org, make_key, make_endpoint, receiver, drain
):
    from events.services import webhook_delivery_redeliver

    _, secret = make_endpoint(org, receiver.url, events=["api_key.revoked"])
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    first = WebhookDelivery.objects.get()
    receiver.default = Reply(500)
    again = webhook_delivery_redeliver(delivery=first, actor=SYSTEM)
    drain()
    received = receiver.wait_for(2)
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    verified(received[1], secret)
    again.refresh_from_db()
    assert (again.manual, again.state, again.attempt_count) == (True, "failed", 1)


def test_a_private_address_is_refused_when_saved(org, settings):
    from config.errors import ValidationFailed
    from events.services import webhook_endpoint_create

    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    for url in (
        "http://127.0.0.1:8000/hook",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ):
        with pytest.raises(ValidationFailed) as caught:
            webhook_endpoint_create(organization=org, actor=SYSTEM, url=url)
        assert "url" in caught.value.extra["fields"]
    assert not WebhookEndpoint.objects.exists()


class FlippingResolver(addresses.Resolver):
    """A name that resolves to a public address first, and to loopback afterwards."""

    def __init__(self) -> None:
        self.answers = ["93.184.215.14", "127.0.0.1"]
        self.asked: list[str] = []

    def resolve(self, host, port, timeout=None):
        import ipaddress

        self.asked.append(host)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [ipaddress.ip_address(answer)]


def test_a_name_that_later_resolves_to_a_private_address_is_refused_at_delivery(
    org, make_key, receiver, drain, settings, monkeypatch
):
    from events.services import webhook_endpoint_create

    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    flipping = FlippingResolver()
    monkeypatch.setattr(addresses, "resolver", flipping)
    port = receiver.url.split(":")[2].split("/")[0]
    # Saved while the name pointed at a public address...
    endpoint, _ = webhook_endpoint_create(
        organization=org,
        actor=SYSTEM,
        url=f"http://rebind.example:{port}/hooks",
        events=["api_key.revoked"],
    )
    # ...then it resolves to loopback, where the receiver (an "internal service") listens.
    key, _ = make_key(org)
    api_key_revoke(key=key, actor=SYSTEM)
    drain()
    time.sleep(0.3)
    assert receiver.received == []
    attempt = WebhookAttempt.objects.get(delivery__endpoint=endpoint)
    assert attempt.outcome == "failed" and attempt.status_code is None
    assert "127.0.0.1" in attempt.error and "loopback" in attempt.error
    assert flipping.asked == ["rebind.example", "rebind.example"]


def test_the_address_connected_to_is_the_one_checked(org, make_key, receiver, drain, settings):
    """With the check on, even the loopback receiver is refused: the checked address is used."""
    from events.services import webhook_endpoint_create

    settings.KEYWARD_WEBHOOK_ALLOW_HTTP = True
    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _ = webhook_endpoint_create(
        organization=org, actor=SYSTEM, url=receiver.url.replace("127.0.0.1", "localhost")
    )
    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = False
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    drain()
    time.sleep(0.2)
    assert receiver.received == []
    attempt = WebhookAttempt.objects.get()
    assert "refused address" in attempt.error and "loopback" in attempt.error


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(302, b"", headers={"Location": "http://127.0.0.1:1/"}),
            "redirect (302) not followed",
        ),
        (Reply(reset=True), "connection failed"),
        (Reply(delay=5), "timed out after 1 s"),
        (Reply(200, b"x" * 50, drip=0.3), None),  # status came in time: delivered
    ],
    ids=["redirect", "reset", "hang", "slow-body"],
)
def test_misbehaving_receivers_give_a_failed_attempt_with_its_reason(
    org, make_endpoint, receiver, drain, settings, reply, expected
):
    settings.KEYWARD_WEBHOOK_TIMEOUT = 1.0
    endpoint, _ = make_endpoint(org, receiver.url)
    settings.KEYWARD_WEBHOOK_TIMEOUT = 1.0
    receiver.replies = [reply]
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    started = time.monotonic()
    drain()
    assert time.monotonic() - started < 4  # never a stuck worker
    attempt = WebhookAttempt.objects.get()
    if expected is None:
        assert attempt.outcome == "delivered" and attempt.status_code == 200
    else:
        assert attempt.outcome == "failed", attempt.error
        assert expected in attempt.error
    assert len(receiver.received) == 1  # redirects are not followed


def test_a_huge_answer_is_read_only_as_far_as_its_first_kilobyte(
    org, make_endpoint, receiver, drain
):
    endpoint, _ = make_endpoint(org, receiver.url)
    receiver.replies = [Reply(200, b"\x00" + b"A" * (20 * 1024 * 1024))]
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    started = time.monotonic()
    drain()
    assert time.monotonic() - started < 3
    attempt = WebhookAttempt.objects.get()
    assert attempt.outcome == "delivered"
    assert len(attempt.response_excerpt) == 1024
    assert attempt.response_excerpt.startswith("\ufffdAAA")  # no NUL reaches the database


def test_a_receiver_that_never_answers_does_not_hold_the_worker(
    org, make_endpoint, receiver, drain, settings
):
    endpoint, _ = make_endpoint(org, receiver.url)
    settings.KEYWARD_WEBHOOK_TIMEOUT = 1.0
    hang = threading.Event()
    receiver.replies = [Reply(hang=hang)]
    try:
        webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
        started = time.monotonic()
        drain()
        assert time.monotonic() - started < 3
    finally:
        hang.set()
    attempt = WebhookAttempt.objects.get()
    assert attempt.error == "timed out after 1 s" and attempt.latency_ms >= 900


def test_an_endpoint_failing_for_five_days_is_disabled_and_owners_are_emailed(
    org, owner, add_member, make_endpoint, receiver, drain
):
    admin = add_member(org, Role.ADMIN)
    endpoint, _ = make_endpoint(org, receiver.url)
    receiver.default = Reply(500)
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    drain()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None and endpoint.enabled
    assert endpoint_health() == {"disabled": 0}
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=5, minutes=1)
    )
    assert endpoint_health() == {"disabled": 1}
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "failing")
    assert AuditEvent.objects.filter(action="webhook.disabled", target_id=endpoint.pk).count() == 1
    drain()
    [message] = mail.outbox
    assert message.to == [owner.email]  # owners, not admins
    assert admin.email not in message.to
    assert "5 days" in message.body
    html = message.alternatives[0]
    assert html[1] == "text/html" and endpoint.url in html[0]


def test_a_success_ends_the_run_of_failures(org, make_endpoint, receiver, drain):
    endpoint, _ = make_endpoint(org, receiver.url)
    receiver.replies = [Reply(500)]
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    drain()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    drain()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_two_claims_of_one_attempt_let_only_one_through(org, make_endpoint, receiver):
    endpoint, _ = make_endpoint(org, receiver.url)
    delivery = webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    first = deliverer.claim(delivery.pk)
    assert first is not None and first.attempt.number == 1
    assert deliverer.claim(delivery.pk) is None  # leased
    assert deliverer.deliver(delivery.pk) == "not claimed"
    assert receiver.received == []


def test_a_worker_that_lost_its_lease_records_nothing_over_the_next_attempt(
    org, make_endpoint, receiver
):
    endpoint, _ = make_endpoint(org, receiver.url)
    delivery = webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    stale = deliverer.claim(delivery.pk)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now())
    fresh = deliverer.claim(delivery.pk)  # the first worker is presumed dead
    assert fresh.attempt.number == 2
    assert WebhookAttempt.objects.get(number=1).outcome == "interrupted"
    assert deliverer.finish(stale.delivery, stale.attempt, _answer(200)) == "superseded"
    delivery.refresh_from_db()
    assert delivery.state == "pending" and delivery.attempt_count == 2
