"""The webhooks page in Chromium: add an endpoint, see its secret once, test, redeliver."""

from __future__ import annotations

import pytest

from events.models import WebhookDelivery
from events.tests.receiver import Reply, verified
from orgs.tests.test_browser import browser, log_in, new_page, shoot  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_adds_an_endpoint_sees_the_secret_once_tests_and_redelivers(
    live_server,
    new_page,  # noqa: F811 (the fixture imported above)
    org,
    owner,
    receiver,
    loopback,
    drain,
):
    base = live_server.url
    page = new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    log_in(page, base, owner.email)
    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/")
    page.get_by_role("link", name="Webhooks").click()
    assert page.get_by_role("heading", name="Webhooks", exact=True).is_visible()

    page.get_by_role("button", name="Add endpoint").click()
    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_label("Description").fill("Audit sink")
    page.locator("input[name=events][value='api_key.revoked']").check()
    page.locator("input[name=events][value='webhook.test']").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#new-secret").text_content().strip()
    assert secret.startswith("whsec_")
    assert page.get_by_text("You will not be able to see it again", exact=False).is_visible()
    shoot(page, "webhook-secret-once")
    page.reload()
    page.wait_for_load_state()
    assert secret not in page.content()

    page.goto(f"{base}/orgs/{org.slug}/settings/webhooks/")
    section = page.locator("section.endpoint", has_text=receiver.url)
    assert section.get_by_text("api_key.revoked", exact=True).is_visible()
    section.get_by_role("button", name="Send test event").click()
    assert page.get_by_text("on its way", exact=False).is_visible()
    drain()
    [first] = receiver.wait_for(1)
    assert verified(first, secret)["type"] == "webhook.test"

    page.reload()
    row = page.locator("tr[data-delivery-id]").first
    assert row.locator("td[data-label=State] .badge").text_content() == "Delivered"
    row.get_by_text("1 attempt").click()
    assert row.locator("li[data-attempt='1']").get_by_text("200").is_visible()

    receiver.default = Reply(503, b'{"busy": true}')
    row.get_by_role("button", name="Redeliver").click()
    assert page.get_by_text("with the same webhook-id", exact=False).is_visible()
    drain()
    received = receiver.wait_for(2)
    assert received[1].headers["webhook-id"] == first.headers["webhook-id"]
    assert verified(received[1], secret)["type"] == "webhook.test"

    page.reload()
    rows = page.locator("tr[data-delivery-id]")
    assert rows.count() == 2
    newest = rows.first
    # A redelivery is one attempt: a 503 leaves it failed, with no retry.
    assert newest.locator("td[data-label=State] .badge").text_content() == "Failed"
    newest.get_by_text("1 attempt").click()
    assert newest.locator(".excerpt").text_content() == '{"busy": true}'
    assert WebhookDelivery.objects.filter(event_id=first.headers["webhook-id"]).count() == 2
    shoot(page, "webhooks-page")
    assert not [m for m in console if "Content Security Policy" in m]
