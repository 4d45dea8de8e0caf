"""GET /api/v1/audit-events: scoped, newest first, filtered, paginated, never another org's."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.db import transaction
from django.utils import timezone

from audit import services
from audit.actors import Actor, Target
from audit.models import AuditEvent
from audit.services import audit_record
from orgs.models import Membership
from orgs.roles import Role
from orgs.services import membership_role_change

URL = "/api/v1/audit-events"
EVENT_FIELDS = {
    "id",
    "occurred_at",
    "action",
    "actor",
    "ip",
    "user_agent",
    "request_id",
    "trace_id",
    "target",
    "changes",
}


def record(org, action, actor=None, target=None, changes=None):
    with transaction.atomic():
        return audit_record(
            organization_id=org.pk,
            action=action,
            actor=actor or Actor.system("test"),
            target=target,
            changes=changes,
        )


@pytest.fixture
def reader(org, make_key):
    key, token = make_key(org, name="Auditor", scopes=["audit:read"])
    return key, token


def seqs(response) -> list[int]:
    ids = [int(event["id"]) for event in response.json()["results"]]
    return list(
        AuditEvent.objects.filter(pk__in=ids).order_by("-seq").values_list("seq", flat=True)
    )


def test_lists_the_organisations_events_newest_first_in_the_documented_shape(
    org, reader, api, make_org
):
    _key, token = reader
    other = make_org("globex")
    record(other, "test.elsewhere")
    record(
        org,
        "test.mine",
        target=Target("thing", "t1", "Thing"),
        changes={"n": {"before": 1, "after": 2}},
    )
    response = api(token).get(URL, HTTP_X_REQUEST_ID="list-1")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next"}
    assert body["next"] is None
    events = body["results"]
    assert all(set(event) == EVENT_FIELDS for event in events)
    ours = AuditEvent.objects.filter(organization=org).order_by("-seq")
    assert [e["id"] for e in events] == [str(e.pk) for e in ours]
    first = events[0]
    assert first["action"] == "test.mine"
    assert first["actor"] == {"type": "system", "id": None, "label": "test"}
    assert first["target"] == {"type": "thing", "id": "t1", "label": "Thing"}
    assert first["changes"] == {"n": {"before": 1, "after": 2}}
    assert first["occurred_at"].endswith("Z")
    assert "test.elsewhere" not in {e["action"] for e in events}


def test_pages_follow_next_links_without_gaps_or_repeats(org, reader, api):
    _key, token = reader
    for n in range(7):
        record(org, f"test.n{n}")
    client = api(token)
    total = AuditEvent.objects.filter(organization=org).count()
    seen: list[int] = []
    response = client.get(URL, {"limit": 3})
    pages = 0
    while True:
        assert response.status_code == 200
        assert len(response.json()["results"]) <= 3
        seen += seqs(response)
        pages += 1
        following = response.json()["next"]
        if following is None:
            break
        assert "limit=3" in following
        response = client.get(following)
    assert seen == list(range(total, 0, -1))
    assert pages == -(-total // 3)


def test_filters_by_exact_action_and_by_prefix(org, reader, api):
    _key, token = reader
    record(org, "api_key.thing")
    record(org, "api_keyring.other")
    record(org, "member.added")
    client = api(token)
    exact = client.get(URL, {"action": "member.added"}).json()["results"]
    assert {e["action"] for e in exact} == {"member.added"}
    prefixed = client.get(URL, {"action": "api_key."}).json()["results"]
    assert "api_key.thing" in {e["action"] for e in prefixed}
    assert all(e["action"].startswith("api_key.") for e in prefixed)
    assert client.get(URL, {"action": "api_key"}).json()["results"] == []


def test_filters_by_actor_and_target(org, reader, api, make_key):
    key, token = reader
    other, _ = make_key(org, name="Other")
    record(org, "test.by_key", actor=key, target=other)
    record(org, "test.on_key", target=key)
    client = api(token)
    by_actor = client.get(URL, {"actor": key.id}).json()["results"]
    assert [e["action"] for e in by_actor] == ["test.by_key"]
    on_target = client.get(URL, {"target": key.id}).json()["results"]
    assert [e["action"] for e in on_target] == ["test.on_key", "api_key.created"]


def test_filters_by_time_since_inclusive_until_exclusive(make_org, make_key, api, monkeypatch):
    now = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(services, "_now", lambda: now - timedelta(days=40))
    org = make_org("timely")
    _key, token = make_key(org, scopes=["audit:read"])
    for days, action in [(30, "test.old"), (10, "test.middle"), (1, "test.recent")]:
        monkeypatch.setattr(services, "_now", lambda d=days: now - timedelta(days=d))
        record(org, action)
    monkeypatch.undo()
    client = api(token)

    def actions(**params):
        response = client.get(URL, params)
        assert response.status_code == 200, response.json()
        return [e["action"] for e in response.json()["results"] if e["action"].startswith("test.")]

    middle = (now - timedelta(days=10)).isoformat().replace("+00:00", "Z")
    assert actions(since=middle) == ["test.recent", "test.middle"]
    assert actions(until=middle) == ["test.old"]
    a_month_before = (now - timedelta(days=40)).date().isoformat()
    assert actions(since=a_month_before, until=middle) == ["test.old"]
    assert actions(since=now.isoformat().replace("+00:00", "Z")) == []
    assert actions(until=a_month_before) == []


def test_empty_filters_are_no_filters_as_an_html_form_sends_them(org, reader, api):
    _key, token = reader
    everything = api(token).get(URL).json()["results"]
    blank = api(token).get(URL, {"action": "", "actor": "", "since": "", "until": ""})
    assert blank.status_code == 200
    assert blank.json()["results"] == everything != []


def test_another_organisations_ids_find_nothing(org, reader, api, make_org, make_key):
    _key, token = reader
    globex = make_org("globex")
    foreign, _ = make_key(globex)
    response = api(token).get(URL, {"target": foreign.id})
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-13-01T00:00:00Z"}, "since"),
        ({"until": "2024-02-30"}, "until"),
        ({"since": "2024-05-01T00:00:00Z", "until": "2024-04-01T00:00:00Z"}, "until"),
        ({"action": "API_KEY.Created"}, "action"),
        ({"action": "api_key..created"}, "action"),
        ({"action": "a" * 65}, "action"),
        ({"actor": "no spaces here"}, "actor"),
        ({"target": "x" * 65}, "target"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.b64encode(b"p=abc").decode()}, "cursor"),
        ({"cursor": base64.b64encode(b"p=99999999999999999999999").decode()}, "cursor"),
    ],
)
def test_bad_values_are_a_validation_error_naming_the_field(org, reader, api, params, field):
    _key, token = reader
    response = api(token).get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]


def test_a_cursor_from_the_keys_list_with_a_bad_position_is_refused(org, make_key, api):
    _key, token = make_key(org)
    cursor = base64.b64encode(b"p=not-a-time").decode()
    response = api(token).get("/api/v1/keys", {"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["fields"]


def test_a_next_link_keeps_the_filters(org, reader, api):
    _key, token = reader
    for _ in range(3):
        record(org, "test.repeat")
    response = api(token).get(URL, {"action": "test.", "limit": 2})
    following = parse_qs(urlparse(response.json()["next"]).query)
    assert following["action"] == ["test."]
    rest = api(token).get(response.json()["next"]).json()["results"]
    assert [e["action"] for e in rest] == ["test.repeat"]


def test_without_audit_read_the_key_is_refused(org, make_key, api):
    _key, token = make_key(org, scopes=["keys:read"])
    response = api(token).get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response.json()["error"]["required_scopes"] == ["audit:read"]


def test_without_a_key_the_request_is_refused(org):
    from rest_framework.test import APIClient

    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_key"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_personal_keys_of_people_who_may_not_read_the_log_are_refused(
    org, add_member, make_key, api, role
):
    person = add_member(org, role)
    _key, token = make_key(org, owner=person, scopes=["audit:read", "keys:read"])
    response = api(token).get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"


def test_demoting_an_admin_closes_the_log_to_their_keys_at_once(org, add_member, make_key, api):
    person = add_member(org, Role.ADMIN)
    _key, token = make_key(org, owner=person, scopes=["audit:read"])
    assert api(token).get(URL).status_code == 200
    membership = Membership.objects.get(organization=org, user=person)
    membership_role_change(membership=membership, role=Role.MEMBER, actor=Actor.system("test"))
    assert api(token).get(URL).json()["error"]["code"] == "missing_scope"


def test_query_strings_are_encoded_in_next_links(org, reader, api):
    _key, token = reader
    for _ in range(2):
        record(org, "test.enc")
    since = "2000-01-01T00:00:00+00:00"
    response = api(token).get(URL + "?" + urlencode({"since": since, "limit": 1}))
    assert response.status_code == 200
    assert parse_qs(urlparse(response.json()["next"]).query)["since"] == [since]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"until": "9999-12-31"}, 200),
        ({"since": "0001-01-01"}, 200),
        ({"until": "9999-12-31T23:59:59.999999Z"}, 200),
        ({"since": "9999-12-31T23:59:59-14:00"}, 400),  # past the last representable instant
        ({"until": "0001-01-01T00:00:00+14:00"}, 400),  # before the first
        ({"since": "99999-01-01"}, 400),
    ],
)
def test_times_at_the_ends_of_the_calendar_never_crash(org, reader, api, params, status):
    _key, token = reader
    client = api(token)
    client.raise_request_exception = False
    response = client.get(URL, params)
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["error"]["code"] == "validation_error"
