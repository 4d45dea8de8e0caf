"""System checks on how Keyward is served: client addresses and where email goes.

Django runs them before `manage.py` commands; gunicorn runs those tagged
`SERVING` in every worker as it boots (`config/serving.py`), where the sockets
it listens on are known, and a worker with an error refuses to serve.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from config import net

SERVING = "keyward_serving"

# Backends that write each message, links and all, where the server's output goes.
PRINTING_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
}


@register(Tags.security, SERVING)
def check_trusted_proxies(app_configs, **kwargs) -> list[CheckMessage]:
    """Refuse a KEYWARD_TRUSTED_PROXIES entry that is neither a CIDR block nor `unix`."""
    errors: list[CheckMessage] = []
    for entry in settings.KEYWARD_TRUSTED_PROXIES:
        if entry.strip().lower() == net.UNIX_SOCKET:
            continue
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            errors.append(
                Error(
                    f"KEYWARD_TRUSTED_PROXIES holds {entry!r}, which is not a CIDR block.",
                    hint="Use blocks like 10.0.0.0/8 or 2001:db8::/32, or `unix`.",
                    id="keyward.E010",
                )
            )
    return errors


@register(Tags.security, SERVING)
def check_client_address(app_configs, **kwargs) -> list[CheckMessage]:
    """Warn when requests come on a Unix socket whose proxy is not trusted."""
    if net.served_on_unix_socket() and not net.trusts_unix_socket():
        return [
            Warning(
                "Keyward is served on a Unix socket, where REMOTE_ADDR is not an address, "
                "and KEYWARD_TRUSTED_PROXIES does not hold `unix`: every client is "
                "addressless, so the invalid-key guard, allowlists and login throttling "
                "per address cannot work.",
                hint="Set KEYWARD_TRUSTED_PROXIES=unix and have the proxy send X-Forwarded-For.",
                id="keyward.W010",
            )
        ]
    return []


@register(Tags.security, SERVING)
def check_email_backend(app_configs, **kwargs) -> list[CheckMessage]:
    """Refuse, outside DEBUG, an email backend that prints reset and invitation links."""
    backend = settings.EMAIL_BACKEND
    if settings.DEBUG or backend not in PRINTING_EMAIL_BACKENDS:
        return []
    if getattr(settings, "KEYWARD_ALLOW_CONSOLE_EMAIL", False):
        return []
    return [
        Error(
            f"EMAIL_BACKEND is {backend} with DEBUG off: password-reset, sign-up and "
            "invitation links would be written whole to the server's output or files.",
            hint="Configure SMTP (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend"
            ", EMAIL_HOST, ...), or set KEYWARD_ALLOW_CONSOLE_EMAIL=1 to accept this.",
            id="keyward.E011",
        )
    ]
