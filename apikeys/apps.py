from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from apikeys import checks  # noqa: F401  (registers the system checks)
        from apikeys.receivers import connect_to_orgs

        if not settings.KEYWARD_PEPPER:
            # No key could be hashed or checked: refuse to start at all, under any server.
            raise ImproperlyConfigured(
                "KEYWARD_PEPPER is not set. Set it in the environment (or DEBUG=1 on a laptop)."
            )
        connect_to_orgs()  # revoke keys when a member loses access; forget cached keys
