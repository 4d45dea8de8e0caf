"""Key kinds in a real browser: the create form, and CORS as Chromium itself enforces it.

The widget page is served by a second HTTP server (the standard library's) on
another port, so Chromium sees a cross-origin request with `Authorization` and
sends a real preflight: from a listed origin the widget answers and the page
reads it; from any other, Chromium blocks the request before it is sent.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apikeys.models import APIKey
from demo.services import bot_create
from orgs.tests.test_browser import log_in, shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDGET_PAGE = """<!doctype html><html><head><title>Shop</title></head>
<body><p id="greeting">…</p></body></html>"""

FETCH_WIDGET = """async ([url, token]) => {
  try {
    const response = await fetch(url, {headers: {Authorization: "Bearer " + token}});
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {blocked: String(error)};
  }
}"""


@pytest.fixture
def shop_server(tmp_path):
    """Serve a shop's page on 127.0.0.1 from another port: another origin than Keyward's."""
    (tmp_path / "index.html").write_text(WIDGET_PAGE)
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def api_get(url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 (the live server, over http)
        url, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_publishable_key_made_on_the_page_works_from_its_origin_only(
    live_server, new_page, org, owner, shop_server
):
    support = bot_create(organization=org, name="Support", greeting="Hi from the shop")
    base = live_server.url
    shop = f"http://127.0.0.1:{shop_server}"
    page = new_page()
    log_in(page, base, owner.email)
    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/new/")
    origins = page.get_by_label("Allowed origins")
    assert not origins.is_visible()  # a secret key has no origins
    assert page.get_by_label("keys:read").is_visible()
    page.get_by_role("radio", name=re.compile(r"^Publishable")).check()
    assert origins.is_visible()
    assert not page.get_by_label("keys:read").is_visible()  # only public scopes remain
    page.get_by_label("Name").fill("Shop widget")
    origins.fill(shop)
    page.get_by_role("checkbox", name=re.compile(r"^widget")).check()
    shoot(page, "publishable-form")
    page.get_by_role("button", name="Create key").click()
    token = page.locator("#new-token").text_content().strip()
    key = APIKey.objects.get(name="Shop widget")
    assert token.startswith(f"kw_pub_live_{key.id}_")
    assert key.allowed_origins == [shop]

    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/{key.id}/")
    assert page.locator("#publishable-token").text_content().strip() == token

    widget_url = f"{base}/api/v1/widget/bots/{support.id}"
    shop_page = new_page()
    shop_page.goto(f"{shop}/index.html")
    answer = shop_page.evaluate(FETCH_WIDGET, [widget_url, token])
    assert answer == {
        "status": 200,
        "body": {"id": support.id, "name": "Support", "greeting": "Hi from the shop"},
    }
    elsewhere = new_page()
    elsewhere.goto(f"http://localhost:{shop_server}/index.html")  # the same page, another origin
    blocked = elsewhere.evaluate(FETCH_WIDGET, [widget_url, token])
    assert "blocked" in blocked, blocked
    status, body = api_get(f"{base}/api/v1/bots", token)
    assert (status, body["error"]["code"]) == (403, "publishable_key_not_allowed")


def test_a_key_limited_by_ticking_a_bot_reaches_that_bot_only(live_server, new_page, org, owner):
    support = bot_create(organization=org, name="Support")
    sales = bot_create(organization=org, name="Sales")
    base = live_server.url
    page = new_page()
    log_in(page, base, owner.email)
    page.goto(f"{base}/orgs/{org.slug}/settings/api-keys/new/")
    page.get_by_label("Name").fill("Support bot only")
    page.get_by_label("bots:read").check()
    page.locator("#resources-resources_bots").get_by_label("Support").check()
    shoot(page, "resource-form")
    page.get_by_role("button", name="Create key").click()
    token = page.locator("#new-token").text_content().strip()
    assert APIKey.objects.get(name="Support bot only").resources == {"bots": [support.id]}
    assert api_get(f"{base}/api/v1/bots/{support.id}", token)[0] == 200
    status, body = api_get(f"{base}/api/v1/bots/{sales.id}", token)
    assert (status, body["error"]["code"]) == (403, "resource_not_allowed")
    status, body = api_get(f"{base}/api/v1/bots", token)
    assert [bot["id"] for bot in body["results"]] == [support.id]
