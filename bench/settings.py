"""Settings for the benchmarks and the multi-process test: production settings plus bench views.

Everything here is for measuring, never for serving: the bench app, the peers'
apps (DRF tokens, djangorestframework-api-key) and a middleware that names the
worker process and counts database queries. Production settings stay untouched,
including whatever throttles and middleware they gain later.
"""

import os
import warnings
from importlib.util import find_spec

os.environ.setdefault("KEYWARD_ENV_FILE", "")  # a checkout's development `.env` never applies
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("KEYWARD_PEPPER", "bench-pepper-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kw_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, MIDDLEWARE, STORAGES

DEBUG = False  # DEBUG keeps every query in memory: never measure with it
# The peers come from requirements-bench.txt; the multi-process test needs none of them.
BENCH_PEERS = (
    os.environ.get("BENCH_PEERS") != "0" and find_spec("rest_framework_api_key") is not None
)
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken", "bench"]
if BENCH_PEERS:
    INSTALLED_APPS.append("rest_framework_api_key")
# Outermost, so that it sees every query the request causes, the guards' included.
MIDDLEWARE = ["bench.middleware.BenchMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "bench.urls"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fixtures only, never login

# Whitenoise warns once per process that nothing was collected: nothing needs to be here.
warnings.filterwarnings("ignore", message="No directory at")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # 401s and 403s are what the multi-process test expects; one log line each is noise.
    "loggers": {"django.request": {"level": "ERROR"}},
}
