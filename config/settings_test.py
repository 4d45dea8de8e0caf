"""Settings for the test suite: production settings with test-only secrets."""

import os

# Never read the checkout's `.env` (`make run` writes one with DEBUG on): tests, and the
# processes they start with this environment, see only what they set themselves.
os.environ.setdefault("KEYWARD_ENV_FILE", "")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("KEYWARD_PEPPER", "test-pepper-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
# Threaded tests hold a connection per thread (8 senders, 2 flushers, the test itself).
os.environ.setdefault("DATABASE_POOL_MAX", "20")
# Tests flush usage themselves: a background thread would write outside their transaction.
os.environ.setdefault("KEYWARD_USAGE_FLUSH_SECONDS", "0")
# The demo product API is the integration test of Keyward's public surface.
os.environ.setdefault("KEYWARD_DEMO", "1")

from config.settings import *  # noqa: F403
from config.settings import DATABASES, STORAGES

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, but emptying the database between transactional tests passes
    # the audit tables' TRUNCATE trigger (config/testdb/base.py).
    DATABASES["default"]["ENGINE"] = "config.testdb"

STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Argon2 is deliberately slow; the suite creates hundreds of users. Production settings
# keep Argon2 first (config/tests/test_settings.py checks it).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
