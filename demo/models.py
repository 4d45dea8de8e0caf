"""The demo product's data: an organisation's chat bots and the channels they answer on."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(12))


def new_bot_id() -> str:
    return _new_id("bot_")


def new_channel_id() -> str:
    return _new_id("ch_")


class Bot(models.Model):
    """A chat bot of one organisation; its widget settings are public."""

    id = models.CharField(primary_key=True, max_length=16, default=new_bot_id, editable=False)
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="demo_bots"
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    greeting = models.CharField(max_length=200, default="Hi! How can I help?")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="demo_bot_org_created")
        ]

    def __str__(self) -> str:
        return self.name


class Channel(models.Model):
    """Where a bot answers: a web widget, Slack, WhatsApp or email."""

    class Kind(models.TextChoices):
        WEB = "web", "Web widget"
        SLACK = "slack", "Slack"
        WHATSAPP = "whatsapp", "WhatsApp"
        EMAIL = "email", "Email"

    id = models.CharField(primary_key=True, max_length=15, default=new_channel_id, editable=False)
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [models.Index(fields=["bot", "-created_at", "-id"], name="demo_channel_bot")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"
