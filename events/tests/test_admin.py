"""Operators see endpoints, deliveries, notices and job runs in the admin, read-only."""

from __future__ import annotations

import pytest

from events.models import WebhookEndpoint
from events.services import webhook_endpoint_test
from events.tests.conftest import SYSTEM


@pytest.mark.django_db
def test_admin_pages_show_the_rows_never_a_secret(client, make_user, org, make_endpoint):
    endpoint, secret = make_endpoint(org, "https://hooks.example.com/in")
    delivery = webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
    operator = make_user()
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client.force_login(operator)
    sealed = WebhookEndpoint.objects.get().secret_sealed
    for path in (
        "/admin/events/webhookendpoint/",
        f"/admin/events/webhookendpoint/{endpoint.pk}/change/",
        "/admin/events/webhookdelivery/",
        f"/admin/events/webhookdelivery/{delivery.pk}/change/",
        "/admin/events/notice/",
        "/admin/events/jobrun/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        text = response.content.decode()
        assert secret[6:] not in text and sealed not in text, path
    assert client.post("/admin/events/webhookendpoint/add/").status_code == 403
