"""Web hardening: check --deploy, security headers, the CSP and session cookies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from harness import production_env as harness_production_env

BASE_DIR = Path(settings.BASE_DIR)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def production_env(**overrides: str) -> dict[str, str]:
    """Return production's environment as deployed: HTTPS, secure cookies, a real host."""
    return harness_production_env(
        plain_http=False, **{"ALLOWED_HOSTS": "keyward.example.com", **overrides}
    )


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "check_id"),
    [
        ({"SECRET_KEY": "short-and-weak"}, "security.W009"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"KEYWARD_PEPPER": ""}, "KEYWARD_PEPPER"),
    ],
)
def test_check_deploy_fails_on_a_weakened_setting(env, check_id):
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0
    assert check_id in result.stdout + result.stderr


def test_production_cookies_are_secure_httponly_and_lax():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({n: getattr(s, n) for n in ["
        "'SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', "
        "'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
        "'SECURE_CONTENT_TYPE_NOSNIFF', 'SECURE_REFERRER_POLICY', 'DEBUG']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "DEBUG": False,
    }


@pytest.mark.django_db
def test_the_session_cookie_is_httponly_and_lax(client, make_user):
    user = make_user(password="a long enough password 123")
    user.is_staff = True
    user.save()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": user.email, "password": "a long enough password 123"},
    )
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


PAGES = ["/api/v1/whoami", "/api/v1/keys", "/api/v1/no/such", "/api/v1/schema", "/api/v1/docs/"]
PAGES += ["/healthz", "/readyz", "/admin/login/", "/no/such/page"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_every_response_carries_the_security_headers(client, url):
    response = client.get(url)
    assert response["Content-Security-Policy"] == CSP
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response  # plain HTTP: HSTS would be ignored


@pytest.mark.django_db
def test_the_csp_holds_on_an_authenticated_api_answer(client, org, make_key):
    key, token = make_key(org, scopes=["keys:read"])
    response = client.get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == CSP


@pytest.mark.django_db
def test_hsts_is_sent_over_tls(client):
    response = client.get("/healthz", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_admin_pages_have_no_inline_script(admin_client):
    for url in ("/admin/", "/admin/apikeys/apikey/", "/admin/audit/auditevent/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        for tag in re.findall(r"<script[^>]*>", response.content.decode()):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
