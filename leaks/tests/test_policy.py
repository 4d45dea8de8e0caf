"""The leak_response policy: set on the policy page, validated, audited."""

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from orgs.models import LeakResponse, Membership
from orgs.roles import Role


@pytest.fixture
def owner_client(org):
    client = Client()
    client.force_login(Membership.objects.get(organization=org, role=Role.OWNER).user)
    return client


def test_new_organisations_revoke_leaked_keys(org):
    assert org.leak_response == LeakResponse.REVOKE


def test_the_policy_page_sets_notify_and_records_it(org, owner_client):
    url = reverse("policy", kwargs={"slug": org.slug})
    page = owner_client.get(url).content.decode()
    assert 'name="leak_response"' in page and "When a key is reported as leaked" in page
    response = owner_client.post(url, {"leak_response": "notify", "default_rate_limit": ""})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.leak_response == LeakResponse.NOTIFY
    event = AuditEvent.objects.get(organization=org, action="org.updated")
    assert event.changes["leak_response"] == {"before": "revoke", "after": "notify"}


@pytest.mark.parametrize("value", ["ignore", "REVOKE", "revoke\x00"])
def test_an_unknown_leak_response_is_refused_and_changes_nothing(org, owner_client, value):
    url = reverse("policy", kwargs={"slug": org.slug})
    response = owner_client.post(url, {"leak_response": value})
    assert response.status_code == 400
    if "\x00" not in value:  # a control character is refused at the edge, before the form
        assert "leak_response" in response.content.decode()
    org.refresh_from_db()
    assert org.leak_response == LeakResponse.REVOKE
