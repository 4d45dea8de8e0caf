"""System checks: the development-only webhook switches must not reach production."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def check_webhook_switches(app_configs, **kwargs) -> list[checks.CheckMessage]:
    found = []
    if getattr(settings, "KEYWARD_WEBHOOK_ALLOW_PRIVATE", False):
        found.append(
            checks.Warning(
                "KEYWARD_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach loopback and private "
                "addresses (server-side request forgery).",
                hint="Turn it off outside development and tests.",
                id="events.W001",
            )
        )
    if getattr(settings, "KEYWARD_WEBHOOK_ALLOW_HTTP", False) and not settings.DEBUG:
        found.append(
            checks.Warning(
                "KEYWARD_WEBHOOK_ALLOW_HTTP is on: webhook payloads may travel unencrypted.",
                hint="Turn it off outside development and tests.",
                id="events.W002",
            )
        )
    return found
