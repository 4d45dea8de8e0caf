"""Writes of the demo product: bots and channels."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from demo.models import Bot, Channel
from orgs.models import Organization

BOT_FIELDS = ("name", "description", "greeting")
# Fixed ids, so that the README's tour can name them.
DEMO_BOTS = [
    (
        "bot_support",
        "Support Assistant",
        "Answers customers on the help centre.",
        "Hi! What can I help with?",
    ),
    (
        "bot_sales",
        "Sales Concierge",
        "Qualifies leads from the pricing page.",
        "Looking for a plan?",
    ),
    (
        "bot_hr",
        "HR Helpdesk",
        "Answers staff questions about leave and payroll.",
        "Hello! Ask me anything.",
    ),
]


@transaction.atomic
def bot_create(*, organization: Organization, name: str, **fields: Any) -> Bot:
    """Create a bot in the organisation."""
    return Bot.objects.create(organization=organization, name=name, **fields)


@transaction.atomic
def bot_update(*, bot: Bot, **fields: Any) -> Bot:
    """Change a bot's name, description or greeting."""
    bot = Bot.objects.select_for_update().get(pk=bot.pk)
    for name, value in fields.items():
        if name not in BOT_FIELDS:
            raise ValueError(f"{name} cannot be changed")
        setattr(bot, name, value)
    if fields:
        bot.save(update_fields=[*fields, "updated_at"])
    return bot


@transaction.atomic
def channel_create(*, bot: Bot, kind: str, name: str) -> Channel:
    """Add a channel to a bot."""
    return Channel.objects.create(bot=bot, kind=kind, name=name)


@transaction.atomic
def bots_seed_demo(*, organization: Organization) -> list[Bot]:
    """Give the demo organisation its bots and channels, once; return its bots."""
    if not Bot.objects.filter(organization=organization).exists():
        for bot_id, name, description, greeting in DEMO_BOTS:
            bot = bot_create(
                organization=organization,
                id=bot_id,
                name=name,
                description=description,
                greeting=greeting,
            )
            channel_create(bot=bot, kind=Channel.Kind.WEB, name=f"{name} on the website")
            channel_create(bot=bot, kind=Channel.Kind.SLACK, name=f"{name} in Slack")
    return list(Bot.objects.filter(organization=organization).order_by("created_at", "id"))
