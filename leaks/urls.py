from django.urls import path

from leaks import api

urlpatterns = [
    path("credentials/revoke", api.CredentialRevokeApi.as_view(), name="api-credentials-revoke"),
    path("leaks/github", api.GitHubLeakApi.as_view(), name="api-leaks-github"),
]
