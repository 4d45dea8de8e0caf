"""The pages in a real browser: Playwright driving Debian's Chromium against a live server."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _unavailable(reason: str):
    if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
        pytest.fail(f"Browser tests are required here: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the
    # tests make between browser steps are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(viewport=LAPTOP):
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def log_in(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def whoami(base: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 (the live server, over http)
        f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _usage_history(org, key_id: str) -> None:
    """Give a key some past days of requests, so the chart has something to draw."""
    from datetime import timedelta

    from django.utils import timezone

    from apikeys.models import KeyUsageDay

    today = timezone.now().date()
    for days_ago in range(1, 30, 2):
        KeyUsageDay.objects.create(
            organization=org,
            key_id=key_id,
            day=today - timedelta(days=days_ago),
            count=(days_ago * 37) % 180 + 20,
        )


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(LAPTOP)


def test_owner_creates_rotates_and_revokes_a_key(live_server, new_page, org, owner, make_key):
    base = live_server.url
    make_key(org, name="Billing backend", scopes=["keys:read", "usage:read"])
    make_key(org, name="Old CI", environment="test")
    page = new_page()
    log_in(page, base, owner.email)
    assert page.url.endswith(f"/orgs/{org.slug}/settings/api-keys/")

    page.get_by_role("button", name="Create key").click()
    page.get_by_label("Name").fill("Deploy pipeline")
    page.get_by_label("keys:read").check()
    page.get_by_role("button", name="Create key").click()
    token = page.locator("#new-token").text_content().strip()
    assert page.get_by_text("You will not be able to see it again", exact=False).is_visible()
    shoot(page, "token-once")

    status, body = whoami(base, token)
    assert status == 200 and body["key"]["name"] == "Deploy pipeline"
    key_id = body["key"]["id"]

    page.reload()
    page.wait_for_load_state()
    assert token not in page.content()

    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/")
    row = page.locator(f'tr[data-key-id="{key_id}"]')
    row.get_by_role("button", name="Rotate").click()
    page.get_by_label("In 1 hour").check()
    page.get_by_role("button", name="Rotate key").click()
    new_token = page.locator("#new-token").text_content().strip()
    assert new_token != token
    assert whoami(base, token)[0] == 200
    status, body = whoami(base, new_token)
    assert status == 200
    new_id = body["key"]["id"]

    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/")
    page.locator(f'tr[data-key-id="{new_id}"]').get_by_role("button", name="Revoke").click()
    assert page.get_by_role("heading", name="Revoke “Deploy pipeline”?").is_visible()
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_load_state()
    assert page.locator(f'tr[data-key-id="{new_id}"].row-finished').is_visible()
    status, body = whoami(base, new_token)
    assert status == 401 and body["error"]["code"] == "invalid_key"
    assert whoami(base, token)[0] == 200  # still inside its grace hour
    shoot(page, "keys-page")
    _usage_history(org, key_id)
    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/{key_id}/")
    assert page.locator("svg.chart rect.bar").count() == 30
    shoot(page, "key-page")


def test_a_newcomer_signs_up_confirms_the_address_and_lands_on_the_keys_page(live_server, new_page):
    import re

    from django.core import mail

    base = live_server.url
    page = new_page()
    page.goto(f"{base}/accounts/login/")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Organisation name").fill("Newcomer Labs")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("heading", name="Check your email").is_visible()
    shoot(page, "signup-sent")

    # Not usable before the address is confirmed, and the login page says why.
    log_in(page, base, "newcomer@example.com")
    assert page.get_by_text("Confirm your email address first", exact=False).is_visible()

    (message,) = [m for m in mail.outbox if m.to == ["newcomer@example.com"]]
    link = re.search(r"https?://\S+/signup/confirm/\S+/", message.body).group(0)
    page.goto(link)
    assert page.get_by_role("heading", name="Confirm your email address").is_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm and continue").click()
    page.wait_for_load_state()
    # The new owner's DefaultKey, shown this once, then on to the keys page.
    assert page.get_by_role("heading", name="Welcome to Newcomer Labs").is_visible()
    assert page.get_by_text("Newcomer Labs is ready", exact=False).is_visible()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("kw_live_")
    shoot(page, "signup-default-key")
    page.get_by_role("link", name="Continue").click()
    page.wait_for_load_state()
    assert page.url.endswith("/settings/api-keys/")
    assert token not in page.content()

    # The link worked once.
    again = new_page()
    assert again.goto(link).status == 404


def test_invited_member_joins_and_is_refused_the_keys_page(live_server, new_page, org, owner):
    base = live_server.url
    page = new_page()
    log_in(page, base, owner.email)
    page.goto(f"{base}/orgs/{org.slug}/settings/members/")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    link = page.locator("#invitation-link").text_content().strip()
    assert "/invitations/" in link

    invited = new_page()
    invited.goto(link)
    invited.get_by_label("Choose a password").fill("a fine long password")
    invited.get_by_role("button", name="Create account and join").click()
    invited.wait_for_load_state()
    response = invited.goto(f"{base}/orgs/{org.slug}/settings/api-keys/")
    assert response.status == 403

    page.goto(f"{base}/orgs/{org.slug}/settings/members/")
    assert page.get_by_text("newcomer@example.com").first.is_visible()
    shoot(page, "members-page")


def test_someone_from_another_organisation_gets_404(
    live_server, new_page, org, make_org, make_user
):
    stranger = make_user("stranger@example.com")
    make_org("elsewhere", owner=stranger)
    page = new_page()
    log_in(page, live_server.url, stranger.email)
    for path in ("api-keys/", "members/", "audit-log/", "policy/"):
        response = page.goto(f"{live_server.url}/orgs/{org.slug}/settings/{path}")
        assert response.status == 404


def test_form_errors_show_next_to_the_field_and_keep_what_was_typed(
    live_server, new_page, org, owner
):
    page = new_page()
    log_in(page, live_server.url, owner.email)
    page.goto(f"{live_server.url}/orgs/{org.slug}/settings/api-keys/new/")
    page.get_by_label("Name").fill("Typed by hand")
    page.get_by_label("usage:read").check()
    page.get_by_label("Allowed addresses").fill("10.0.0.1/8")
    page.get_by_label("Rate limit").fill("very fast")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_load_state()
    ips_field = page.locator(".field", has=page.get_by_label("Allowed addresses"))
    assert "without host bits" in ips_field.locator(".field-errors").text_content()
    rate_field = page.locator(".field", has=page.get_by_label("Rate limit"))
    assert rate_field.locator(".field-errors").is_visible()
    assert page.get_by_label("Name").input_value() == "Typed by hand"
    assert page.get_by_label("Allowed addresses").input_value() == "10.0.0.1/8"
    assert page.get_by_label("Rate limit").input_value() == "very fast"
    assert page.get_by_label("usage:read").is_checked()
    shoot(page, "form-errors")
