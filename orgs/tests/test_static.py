import re
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

TEMPLATES = Path(settings.BASE_DIR) / "templates"
PAGE_TEMPLATES = [p for p in TEMPLATES.rglob("*.html") if "admin" not in p.parts]


def test_whitenoise_serves_the_stylesheet_and_script_with_debug_off(tmp_path):
    assert not settings.DEBUG
    with override_settings(STATIC_ROOT=tmp_path):
        call_command("collectstatic", interactive=False, verbosity=0)
        client = Client()
        css = client.get("/static/keyward/keyward.css")
        js = client.get("/static/keyward/keyward.js")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    assert js.status_code == 200 and "javascript" in js["Content-Type"]


def test_page_templates_hold_no_inline_script_or_style():
    """A strict Content-Security-Policy (no inline script or style) must not break a page."""
    assert PAGE_TEMPLATES
    for path in PAGE_TEMPLATES:
        text = path.read_text()
        assert not re.search(r"\sstyle\s*=", text), path
        assert "<style" not in text, path
        assert not re.search(r"<script(?![^>]*\ssrc=)", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path


def test_pages_load_nothing_from_another_host():
    for path in PAGE_TEMPLATES:
        text = path.read_text()
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), path
