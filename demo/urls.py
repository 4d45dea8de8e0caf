from django.urls import path

from demo import api

urlpatterns = [
    path("bots", api.BotListCreateApi.as_view(), name="demo-bots"),
    path("bots/<str:bot_id>", api.BotDetailApi.as_view(), name="demo-bot"),
    path("bots/<str:bot_id>/channels", api.BotChannelsApi.as_view(), name="demo-bot-channels"),
    path("widget/bots/<str:bot_id>", api.WidgetBotApi.as_view(), name="demo-widget-bot"),
]
