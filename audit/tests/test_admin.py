"""The audit log in the admin: readable, never writable, not even by a superuser."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from audit.actors import Actor
from audit.models import AuditEvent
from audit.services import audit_record
from orgs.models import User


@pytest.fixture
def admin_client(client, db):
    superuser = User.objects.create_superuser(email="root@example.com", password="not-used-here")
    client.force_login(superuser)
    return client


@pytest.fixture
def event(org):
    with transaction.atomic():
        return audit_record(organization_id=org.pk, action="test.seen", actor=Actor.system())


def test_a_superuser_can_read_the_log(admin_client, event):
    response = admin_client.get(reverse("admin:audit_auditevent_changelist"))
    assert response.status_code == 200
    assert b"test.seen" in response.content
    detail = admin_client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content


def test_a_superuser_cannot_add_an_event(admin_client, org):
    before = AuditEvent.objects.count()
    url = reverse("admin:audit_auditevent_add")
    assert admin_client.get(url).status_code == 403
    response = admin_client.post(url, {"organization": org.pk, "action": "test.forged"})
    assert response.status_code == 403
    assert AuditEvent.objects.count() == before


def test_a_superuser_cannot_change_an_event(admin_client, event):
    url = reverse("admin:audit_auditevent_change", args=[event.pk])
    response = admin_client.post(url, {"action": "test.rewritten", "actor_label": "mallory"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.action, event.actor_label) == ("test.seen", "system")


def test_a_superuser_cannot_delete_an_event(admin_client, event):
    url = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:audit_auditevent_changelist")
    bulk = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
