"""Keyward settings, read from the environment (and a `.env` file when present)."""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# A `.env` beside manage.py fills in what the environment leaves unset (`make run` writes
# one with development settings). KEYWARD_ENV_FILE names another file, or none when
# empty: the test settings set it empty, so that a checkout's `.env` never changes a test.
env = environ.Env()
ENV_FILE = os.environ.get("KEYWARD_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    environ.Env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)
# Development secrets start with one of these: the fallbacks below, and those `make run`
# writes into `.env`. Without DEBUG they are refused, so production never starts on one.
DEVELOPMENT_SECRET_PREFIXES = ("insecure-", "django-insecure-")
SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-only-secret-key" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for a laptop).")
if not DEBUG and SECRET_KEY.startswith(DEVELOPMENT_SECRET_PREFIXES):
    raise ImproperlyConfigured(
        "SECRET_KEY is a development value (the one `make run` wrote into .env?). "
        "Set a real secret, or DEBUG=1 for a laptop."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "orgs",
    "apikeys",
    "audit",
    "leaks",
    # Before django_tasks_db: its `db_worker` command is extended by ours (docs/README-events.md).
    "events",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.RequestEdgeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.KeyInUrlMiddleware",
    "apikeys.middleware.KeyResponseHeadersMiddleware",
    "apikeys.cors.PublishableKeyCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The largest request body read: a larger one is `413 payload_too_large` (config.input).
# Keyward's own bodies are a few kilobytes at most.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite on a laptop, PostgreSQL (psycopg 3, pooled) in production.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if env.bool("DATABASE_POOL", default=True):
        # Django's psycopg pool keeps connections open between requests; a pool
        # requires CONN_MAX_AGE = 0 (the pool, not Django, decides their lifetime).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5.0),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue
    # instead of failing with "database is locked" half-way through a service.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: local memory by default (one process); Redis when several processes serve.
_cache_url = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
if _cache_url:
    CACHES = {"default": env.cache_url_config(_cache_url)}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "keyward",
        }
    }
CACHES["default"].setdefault("KEY_PREFIX", env.str("CACHE_KEY_PREFIX", default="kw"))
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that stops answering costs a request at most this wait, then counts as down
    # (the callers fall back); without a timeout a silent Redis would hang the request.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("socket_timeout", 1.0)
    CACHES["default"]["OPTIONS"].setdefault("socket_connect_timeout", 1.0)

AUTH_USER_MODEL = "orgs.User"
# Email login, throttled per (account, address) and per address, verified people only.
AUTHENTICATION_BACKENDS = ["orgs.backends.EmailBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# The console prints every message whole, reset and sign-up links included: DEBUG only.
# With DEBUG off, a backend that prints is refused (keyward.E011, config/checks.py)
# unless KEYWARD_ALLOW_CONSOLE_EMAIL says it is wanted.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
KEYWARD_ALLOW_CONSOLE_EMAIL = env.bool("KEYWARD_ALLOW_CONSOLE_EMAIL", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="keyward@localhost")

# Security: strict by default, relaxed only where DEBUG says this is a laptop.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preloading binds the whole domain to HTTPS for months in every browser: a one-way
# choice for whoever runs the deployment (SECURE_HSTS_PRELOAD=1), not for the code.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apikeys.authentication.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apikeys.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.content.JSONBodyParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.content.FirstRendererIfNoneAccepted",
    "DEFAULT_THROTTLE_CLASSES": [
        "apikeys.throttling.KeyRateThrottle",
        "apikeys.throttling.DailyQuotaThrottle",
        "apikeys.address_throttle.PublishableAddressThrottle",
    ],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.KeywardAutoSchema",
}

# OpenAPI 3 at /api/v1/schema, Swagger UI at /api/v1/docs/ from installed files (no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "Keyward API",
    "DESCRIPTION": (
        "Issue, scope, rotate and revoke API keys. Send a key as "
        "`Authorization: Bearer <key>`; never in the URL. Every error has the body "
        "`ErrorResponse`. An operation's scopes are in its `x-required-scopes`. A path "
        "that exists answers a method it lacks with `405 method_not_allowed`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "KeyStatusEnum": "apikeys.models.Status",
        "KeyKindEnum": "apikeys.models.Kind",
        "ActorTypeEnum": ["user", "api_key", "system"],
        "WebhookEventTypeEnum": "events.catalog.EVENT_TYPE_CHOICES",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# Content-Security-Policy on every response (config.middleware): no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# Error reports (DEBUG pages, mails to ADMINS) never show a credential or a token.
DEFAULT_EXCEPTION_REPORTER = "config.logging.KeywardExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.logging.KeywardExceptionReporterFilter"

# Keyward
KEYWARD_TOKEN_BRAND = env.str("KEYWARD_TOKEN_BRAND", default="kw")
KEYWARD_PEPPER = env.str("KEYWARD_PEPPER", default="insecure-dev-only-pepper" if DEBUG else "")
if not DEBUG and KEYWARD_PEPPER.startswith(DEVELOPMENT_SECRET_PREFIXES):
    raise ImproperlyConfigured(
        "KEYWARD_PEPPER is a development value (the one `make run` wrote into .env?). "
        "Set a real secret, or DEBUG=1 for a laptop."
    )
KEYWARD_PEPPER_FALLBACKS = env.list("KEYWARD_PEPPER_FALLBACKS", default=[])
# CIDR blocks whose X-Forwarded-For is believed; `unix` trusts a proxy on a Unix socket.
KEYWARD_TRUSTED_PROXIES = env.list("KEYWARD_TRUSTED_PROXIES", default=[])
# Where GitHub publishes the keys that sign secret-scanning reports (docs/leaks.md).
KEYWARD_GITHUB_KEYS_URL = env.str(
    "KEYWARD_GITHUB_KEYS_URL",
    default="https://api.github.com/meta/public_keys/secret_scanning",
)
# Usage counts reach the database in batches this often (0: only at shutdown).
KEYWARD_USAGE_FLUSH_SECONDS = env.float("KEYWARD_USAGE_FLUSH_SECONDS", default=2.0)
# Per key and hour: addresses, routes and outcomes, for leak investigations (docs/leaks.md).
KEYWARD_KEY_ACTIVITY = env.bool("KEYWARD_KEY_ACTIVITY", default=True)
# What a process gathers (usage, invalid keys, quota slices) goes to Redis this often: a
# process killed without a graceful stop loses at most this much of its usage counts.
KEYWARD_COUNTER_SEND_SECONDS = env.float("KEYWARD_COUNTER_SEND_SECONDS", default=0.25)
# With Redis, a process trusts its cached keys only under a lease this long, renewed four
# times per lease; a change waits at most this long for a process that stopped answering
# (docs/architecture-invalidation.md).
KEYWARD_LEASE_SECONDS = env.float("KEYWARD_LEASE_SECONDS", default=2.0)
KEYWARD_SCOPES = {
    "keys:read": "List and read the organisation's API keys.",
    "keys:write": "Create, update, rotate and revoke API keys.",
    "members:read": "List the organisation's members.",
    "members:write": "Invite, change and remove members.",
    "audit:read": "Read the organisation's audit log.",
    "usage:read": "Read usage figures and limits.",
    "webhooks:read": "List webhook endpoints and their deliveries.",
    "webhooks:write": "Add, change, test and delete webhook endpoints; redeliver events.",
    "admin": "Every scope, present and future.",
}
# Resource types keys can be limited to: name -> dotted path of a function
# `(organization, *, user=None, ids=None)` returning (id, name) pairs (docs/README-kinds.md).
KEYWARD_RESOURCE_TYPES: dict[str, str] = {}

# The demo product API (demo/), served under /api/v1/ as a host project would add one.
# On by default where DEBUG is (`make run`), off in production unless asked for.
KEYWARD_DEMO = env.bool("KEYWARD_DEMO", default=DEBUG)
if KEYWARD_DEMO:
    INSTALLED_APPS.append("demo")
    KEYWARD_SCOPES.update(
        {
            "bots:read": "List and read bots.",
            "bots:write": "Create and change bots.",
            "channels:read": "List a bot's channels.",
            "channels:write": "Add channels to a bot.",
            "widget": {
                "description": "Read a bot's public chat widget settings (publishable keys).",
                "public": True,
            },
        }
    )
    KEYWARD_RESOURCE_TYPES["bots"] = "demo.resources.bots_of"
    SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ChannelKindEnum"] = "demo.models.Channel.Kind"

# Background work: Django's Tasks framework (the django-tasks backport) on the database
# backend, so that workers on any number of machines share one queue (docs/README-events.md).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
# Webhooks (docs/README-events.md). Private and loopback receivers, and plain http, are for
# development and tests only.
KEYWARD_WEBHOOK_ALLOW_PRIVATE = env.bool("KEYWARD_WEBHOOK_ALLOW_PRIVATE", default=False)
KEYWARD_WEBHOOK_ALLOW_HTTP = env.bool("KEYWARD_WEBHOOK_ALLOW_HTTP", default=False)
KEYWARD_WEBHOOK_TIMEOUT = env.float("KEYWARD_WEBHOOK_TIMEOUT", default=15.0)
# How often a worker looks for work another worker dropped (it died mid-task, or a
# process stopped between a commit and its enqueue).
KEYWARD_SWEEP_SECONDS = env.int("KEYWARD_SWEEP_SECONDS", default=60)

# Every handler carries `redact_tokens` (a test checks it): no log line can hold a key.
# Django's own loggers are named here so that its default handlers, which lack the
# filter, are replaced rather than kept alongside; their records reach the root's.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_tokens": {"()": "config.logging.RedactTokensFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_tokens"]},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "redact_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
    },
}
