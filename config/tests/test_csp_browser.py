"""A real browser loads Swagger UI and the admin under the Content-Security-Policy."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("KEYWARD_CHROMIUM") or shutil.which("chromium") or ""
REPORTER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
  e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def page(live_server, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM:
        if os.environ.get("KEYWARD_REQUIRE_SERVICES"):
            pytest.fail("Chromium is required here and was not found (set KEYWARD_CHROMIUM).")
        pytest.skip("Chromium not found")
    # Playwright's sync API runs an event loop in this thread; the ORM work is done by then.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.add_init_script(REPORTER)
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.console_messages = console
        yield page
        browser.close()


def violations(page) -> list[str]:
    reported = page.evaluate("window.__cspViolations")
    logged = [m for m in page.console_messages if "Content Security Policy" in m]
    return reported + logged


def test_swagger_ui_renders_the_schema_without_a_csp_violation(page, live_server):
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector("text=Keyward API", timeout=15000)
    page.wait_for_selector("text=Revoke a key at once; revoking twice is harmless", timeout=15000)
    assert violations(page) == []


def test_admin_login_and_changelist_work_without_a_csp_violation(page, live_server, make_user):
    user = make_user(password="a long enough password 123")
    user.is_staff = user.is_superuser = True
    user.save()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", "a long enough password 123")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Site administration", timeout=15000)
    page.goto(f"{live_server.url}/admin/apikeys/apikey/")
    page.wait_for_selector("#changelist", timeout=15000)
    assert violations(page) == []
