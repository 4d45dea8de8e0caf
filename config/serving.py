"""What gunicorn needs from Keyward: a redacting log, and the serving checks at worker boot.

`gunicorn.conf.py` names both. gunicorn loads the logger class in its master
process, before Django is set up, so this module imports Django only inside
the worker hooks.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from gunicorn.glogging import Logger


class RedactingLogger(Logger):
    """gunicorn's logger, its access and error logs passed through the application's redaction.

    The access log writes request lines, query strings, referrers and user
    agents: a token sent in a URL (`?token=kw_…`, or a path) would land there
    whole. The same filter as every application handler (`config/logging.py`)
    cuts it to its public prefix.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from config.logging import RedactTokensFilter

        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactTokensFilter) for f in log.filters):
                log.addFilter(RedactTokensFilter())


def listens_on_unix_socket(sockets: list[Any]) -> bool:
    """Return whether any of gunicorn's listeners is a Unix socket."""
    return any(getattr(listener, "FAMILY", None) == socket.AF_UNIX for listener in sockets)


def check_worker(worker: Any) -> None:
    """Run the serving checks in a booting worker; refuse to serve on an error.

    gunicorn runs no Django system checks of its own. Here the worker knows its
    sockets, so a Unix socket without `unix` in KEYWARD_TRUSTED_PROXIES is
    reported (keyward.W010), and a printing email backend in production stops
    the worker from booting (keyward.E011), which stops gunicorn.
    """
    from django.core.checks import run_checks
    from django.core.exceptions import ImproperlyConfigured

    from config import net
    from config.checks import SERVING

    if listens_on_unix_socket(getattr(worker, "sockets", [])):
        net.note_unix_socket()
    log = getattr(worker, "log", None) or logging.getLogger("gunicorn.error")
    serious = []
    for message in run_checks(tags=[SERVING]):
        if message.is_silenced():
            continue
        if message.is_serious():
            serious.append(message)
            log.error("%s", message)
        else:
            log.warning("%s", message)
    if serious:
        raise ImproperlyConfigured("; ".join(str(message) for message in serious))
