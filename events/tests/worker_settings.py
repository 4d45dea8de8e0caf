"""Settings for `db_worker` processes started by the worker tests: emails go to files."""

import os

from config.settings_test import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# A file backend with DEBUG off is refused unless asked for (keyward.E011): here it is.
KEYWARD_ALLOW_CONSOLE_EMAIL = True
EMAIL_FILE_PATH = os.environ["KEYWARD_TEST_MAIL_DIR"]
