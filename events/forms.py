"""The webhook endpoint form; what is valid is decided by the services."""

from __future__ import annotations

from django import forms

from events.catalog import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=4096,
        help_text="An https:// address on the public internet that answers POST with a 2xx.",
        widget=forms.URLInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        label="Description", required=False, max_length=1000, help_text="What listens there."
    )
    events = forms.MultipleChoiceField(
        label="Events",
        required=False,
        choices=[(name, name) for name in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave every box empty to receive all events, including those added later.",
    )
    nonce = forms.CharField(widget=forms.HiddenInput, required=False)

    def event_options(self) -> list[dict[str, object]]:
        """Return one checkbox per event type, with its description and state."""
        if self.is_bound:
            chosen = set(self.data.getlist("events"))
        else:
            chosen = set(self.initial.get("events") or [])
        return [
            {
                "name": name,
                "description": description,
                "id": f"id_event_{position}",
                "checked": name in chosen,
            }
            for position, (name, description) in enumerate(EVENT_TYPES.items())
        ]


class EndpointEditForm(EndpointForm):
    enabled = forms.BooleanField(
        label="Enabled",
        required=False,
        help_text="While off, nothing is sent to this endpoint (tests and redeliveries still go).",
    )
