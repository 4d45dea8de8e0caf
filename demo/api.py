"""The demo product's API, guarded by Keyward the way any host project guards its views.

Each view takes three lines: authentication, permissions, scopes. `HasBotAccess`
keeps a key limited to some bots away from the others; the widget endpoint opts
in to publishable keys, which work nowhere else.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import APIKeyAuthentication
from apikeys.permissions import HasResourceAccess, HasScope
from apikeys.resources import filter_allowed
from config.pagination import NewestFirstPagination
from demo import services
from demo.models import Bot, Channel


def no_control_characters(value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise serializers.ValidationError("Control characters are not allowed.")


def text(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(validators=[no_control_characters], **kwargs)


class StrictInput(serializers.Serializer):
    """Refuse fields the endpoint does not know, rather than ignore them."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class BotInput(StrictInput):
    name = text(max_length=100)
    description = text(max_length=500, required=False, allow_blank=True)
    greeting = text(max_length=200, required=False)


class ChannelInput(StrictInput):
    kind = serializers.ChoiceField(choices=Channel.Kind.choices)
    name = text(max_length=100)


class BotOutput(serializers.ModelSerializer):
    class Meta:
        model = Bot
        fields = ("id", "name", "description", "greeting", "created_at", "updated_at")


class BotListOutput(serializers.Serializer):
    results = BotOutput(many=True)
    next = serializers.URLField(allow_null=True)


class ChannelOutput(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ("id", "bot", "kind", "name", "created_at")


class ChannelListOutput(serializers.Serializer):
    results = ChannelOutput(many=True)
    next = serializers.URLField(allow_null=True)


class WidgetOutput(serializers.ModelSerializer):
    """What a chat widget in a web page needs to draw itself: public by design."""

    class Meta:
        model = Bot
        fields = ("id", "name", "greeting")


class HasBotAccess(HasResourceAccess):
    resource_type = "bots"
    resource_url_kwarg = "bot_id"


BOT_ID = re.compile(r"^bot_[0-9A-Za-z_]{1,12}$")


def bot_of(request: Request, bot_id: str) -> Bot:
    if not BOT_ID.match(bot_id):  # not a bot id at all (and never a NUL byte for the database)
        raise NotFound("No such bot.")
    bot = Bot.objects.filter(organization=request.auth.organization, pk=bot_id).first()
    if bot is None:
        raise NotFound("No such bot.")
    return bot


class BotListCreateApi(APIView):
    """The organisation's bots, newest first (GET), or a new bot (POST)."""

    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope, HasBotAccess]
    required_scopes_by_method = {"GET": ["bots:read"], "POST": ["bots:write"]}

    @extend_schema(operation_id="bots_list", responses=BotListOutput)
    def get(self, request: Request) -> Response:
        """List the bots this key may reach, newest first."""
        bots = Bot.objects.filter(organization=request.auth.organization)
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(filter_allowed(bots, request.auth, "bots"), request)
        return paginator.get_paginated_response(BotOutput(page, many=True).data)

    @extend_schema(operation_id="bots_create", request=BotInput, responses={201: BotOutput})
    def post(self, request: Request) -> Response:
        """Create a bot; a key limited to some bots cannot."""
        body = BotInput(data=request.data)
        body.is_valid(raise_exception=True)
        bot = services.bot_create(organization=request.auth.organization, **body.validated_data)
        return Response(BotOutput(bot).data, status=201)


class BotDetailApi(APIView):
    """One bot (GET), or a change to it (PATCH)."""

    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope, HasBotAccess]
    required_scopes_by_method = {"GET": ["bots:read"], "PATCH": ["bots:write"]}

    @extend_schema(operation_id="bots_retrieve", responses=BotOutput)
    def get(self, request: Request, bot_id: str) -> Response:
        """Read one bot."""
        return Response(BotOutput(bot_of(request, bot_id)).data)

    @extend_schema(operation_id="bots_update", request=BotInput, responses=BotOutput)
    def patch(self, request: Request, bot_id: str) -> Response:
        """Change a bot's name, description or greeting."""
        body = BotInput(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        bot = services.bot_update(bot=bot_of(request, bot_id), **body.validated_data)
        return Response(BotOutput(bot).data)


class BotChannelsApi(APIView):
    """A bot's channels (GET), or a new channel (POST)."""

    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope, HasBotAccess]
    required_scopes_by_method = {"GET": ["channels:read"], "POST": ["channels:write"]}

    @extend_schema(operation_id="bots_channels_list", responses=ChannelListOutput)
    def get(self, request: Request, bot_id: str) -> Response:
        """List the channels a bot answers on, newest first."""
        channels = Channel.objects.filter(bot=bot_of(request, bot_id))
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(channels, request)
        return paginator.get_paginated_response(ChannelOutput(page, many=True).data)

    @extend_schema(
        operation_id="bots_channels_create", request=ChannelInput, responses={201: ChannelOutput}
    )
    def post(self, request: Request, bot_id: str) -> Response:
        """Add a channel to a bot."""
        body = ChannelInput(data=request.data)
        body.is_valid(raise_exception=True)
        channel = services.channel_create(bot=bot_of(request, bot_id), **body.validated_data)
        return Response(ChannelOutput(channel).data, status=201)


class WidgetBotApi(APIView):
    """A bot's public widget settings, for a chat widget in a web page (publishable keys)."""

    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope, HasBotAccess]
    required_scopes = ["widget"]
    allow_publishable_keys = True

    @extend_schema(operation_id="widget_bot", responses=WidgetOutput)
    def get(self, request: Request, bot_id: str) -> Response:
        """Read what the widget shows: the bot's name and greeting."""
        return Response(WidgetOutput(bot_of(request, bot_id)).data)
