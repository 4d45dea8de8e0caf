"""The one trivial view, `{"ok": true}`, behind each guard the benchmark compares."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import APIKeyAuthentication
from apikeys.permissions import HasScope


class OkView(APIView):
    def get(self, request, **kwargs):
        return Response({"ok": True})


class NoAuthView(OkView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []


class KeywardView(OkView):
    """Keyward's guard; throttles are REST_FRAMEWORK's defaults, so they count once they land."""

    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = ["keys:read"]


class KeywardScopeView(KeywardView):
    """Require the scope named in the URL (the multi-process test's probe)."""

    def initial(self, request, *args, **kwargs):
        self.required_scopes = [kwargs["scope"]]
        super().initial(request, *args, **kwargs)


class DrfTokenView(OkView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = []


def drf_api_key_view():
    """Return the djangorestframework-api-key view; the package is a bench requirement only."""
    from rest_framework_api_key.permissions import HasAPIKey

    class DrfApiKeyView(OkView):
        authentication_classes = []
        permission_classes = [HasAPIKey]
        throttle_classes = []

    return DrfApiKeyView
