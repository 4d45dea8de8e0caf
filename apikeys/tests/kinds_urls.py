"""The project's URLs plus two probe views, as a host adds them, for the key kinds tests."""

from __future__ import annotations

from django.conf import settings
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import APIKeyAuthentication
from apikeys.permissions import HasResourceAccess, HasScope
from config.urls import urlpatterns as project_urlpatterns

THINGS = 3
# The host's registry in these tests: a public scope, and a resource type of its own.
SCOPES = {
    **settings.KEYWARD_SCOPES,
    "embed": {"description": "Read what an embedded widget shows.", "public": True},
}
RESOURCE_TYPES = {"things": "apikeys.tests.kinds_urls.things_of"}


def things_of(organization, *, user=None, ids=None):
    """A resource type: each organisation has three things; people named `narrow…` reach one."""
    pairs = [(f"{organization.slug}-t{n}", f"Thing {n}") for n in range(1, THINGS + 1)]
    if user is not None and user.email.startswith("narrow"):
        pairs = pairs[:1]
    if ids is not None:
        pairs = [pair for pair in pairs if pair[0] in ids]
    return pairs


class EmbedProbe(APIView):
    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = ["embed"]
    allow_publishable_keys = True

    def get(self, request):
        return Response({"key": request.auth.pk})

    def post(self, request):
        return Response({"key": request.auth.pk})


class ThingProbe(APIView):
    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope, HasResourceAccess]
    required_scopes = []
    resource_type = "things"
    resource_url_kwarg = "thing_id"

    def get(self, request, thing_id):
        return Response({"id": thing_id})


urlpatterns = [
    path("api/v1/probe/embed", EmbedProbe.as_view()),
    path("api/v1/probe/things/<str:thing_id>", ThingProbe.as_view()),
    *project_urlpatterns,
]
