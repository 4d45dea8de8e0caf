from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events: webhooks and email notices"

    def ready(self) -> None:
        from apikeys import refusals
        from audit.services import register_listener
        from events import checks  # noqa: F401  (registers the system checks)
        from events.outbox import on_audit_event
        from events.refusals import tally

        register_listener(on_audit_event)
        refusals.register(tally.record)
