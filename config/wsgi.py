"""WSGI entry point for gunicorn and other WSGI servers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# A server is about to answer requests: write gathered usage when it stops.
from apikeys.usage import install_shutdown_flush  # noqa: E402

install_shutdown_flush()

# With Redis, take this process's lease now, so that its first requests can use its cache.
from apikeys.cache import verified_keys  # noqa: E402

verified_keys.trusted()
