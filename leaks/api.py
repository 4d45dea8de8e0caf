"""The two doors a leaked key comes in by: anyone's report, and GitHub's secret scanning."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import InvalidSignature, Unavailable, ValidationFailed
from config.net import client_ip
from config.openapi import error_response
from leaks import github
from leaks.reports import Reported, ReportLimit, handle_reported

MAX_CREDENTIALS = 1000
MAX_BODY_BYTES = 1024 * 1024


def _json_body(request: Request) -> Any:
    """Return the raw body parsed as JSON, or raise ValidationFailed without echoing it."""
    raw = request.body
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationFailed("The body is larger than 1 MB.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationFailed("The body is not valid JSON.") from None


def _has_control(text: str) -> bool:
    return any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text)


def _strings(items: Any, field: str) -> list[str]:
    if not isinstance(items, list):
        raise ValidationFailed.on(field, "Send a list of strings.")
    if len(items) > MAX_CREDENTIALS:
        raise ValidationFailed.on(field, f"Send at most {MAX_CREDENTIALS} items.")
    if not all(isinstance(item, str) for item in items):
        raise ValidationFailed.on(field, "Every item must be a string.")
    if any(_has_control(item) for item in items):
        raise ValidationFailed.on(field, "Strings may not hold control characters.")
    return items


class UnauthenticatedApi(APIView):
    """A public endpoint: no key, no session, its own body parsing."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes: list[Any] = []


class CredentialRevokeApi(UnauthenticatedApi):
    """Take reports of leaked keys from anyone; always answer the same."""

    limit = ReportLimit()
    # Every answer takes at least this long, so that a real key's revocation (a few
    # writes) cannot be told from a made-up token's by the time the answer takes.
    answer_floor = 0.3
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    @extend_schema(
        operation_id="credentials_revoke",
        summary="Report leaked Keyward keys (no authentication)",
        request=inline_serializer(
            "CredentialRevokeInput",
            {"credentials": serializers.ListField(child=serializers.CharField(), max_length=1000)},
        ),
        responses={
            202: inline_serializer("CredentialRevokeOutput", {"status": serializers.CharField()}),
            400: error_response(
                400, "`validation_error`: not JSON, not the documented shape, or too large."
            ),
            429: error_response(
                429, "`rate_limited`: more than 60 reports from this address this hour."
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        started = self.clock()
        if "HTTP_AUTHORIZATION" in request.META:
            raise ValidationFailed.on(
                "Authorization", "This endpoint takes no credentials; send none."
            )
        address = client_ip(request._request)
        self.limit.count(address)
        body = _json_body(request)
        if not isinstance(body, dict) or set(body) != {"credentials"}:
            raise ValidationFailed.on("credentials", 'Send {"credentials": ["kw_…", …]}.')
        credentials = _strings(body["credentials"], "credentials")
        handle_reported(
            [Reported(token=text) for text in credentials], reporter=address or "unknown"
        )
        wait = started + self.answer_floor - self.clock()
        if wait > 0:
            self.sleep(wait)
        return Response({"status": "accepted"}, status=202)


class GitHubLeakApi(UnauthenticatedApi):
    """GitHub's secret scanning partner endpoint: signed reports, labelled answers."""

    keys = github.GitHubKeys()

    @extend_schema(
        operation_id="leaks_github",
        summary="GitHub secret scanning partner reports (signed by GitHub)",
        request=inline_serializer(
            "GitHubLeakItem",
            {
                "token": serializers.CharField(),
                "type": serializers.CharField(),
                "url": serializers.CharField(),
                "source": serializers.CharField(),
            },
            many=True,
        ),
        responses={
            200: OpenApiResponse(description="One label per reported token"),
            400: error_response(
                400, "`validation_error`: not JSON, not the documented shape, or too large."
            ),
            401: error_response(
                401, "`invalid_signature`: the GitHub signature is missing or wrong."
            ),
            503: error_response(
                503, "`unavailable`: GitHub's signing keys could not be fetched yet."
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        raw = request.body
        if len(raw) > MAX_BODY_BYTES:
            raise ValidationFailed("The body is larger than 1 MB.")
        try:
            verified = github.verify_report(raw, request.headers, self.keys)
        except github.KeysUnavailable:
            raise Unavailable("GitHub's signing keys cannot be fetched yet.") from None
        if not verified:
            raise InvalidSignature("The GitHub signature does not verify.")
        items = _json_body(request)
        if not isinstance(items, list) or len(items) > MAX_CREDENTIALS:
            raise ValidationFailed(f"Send a JSON array of at most {MAX_CREDENTIALS} reports.")
        reports = []
        for item in items:
            if not isinstance(item, dict) or not all(
                isinstance(item.get(name, ""), str) for name in ("token", "type", "url", "source")
            ):
                raise ValidationFailed("Each report is an object of strings.")
            if not item.get("token"):
                raise ValidationFailed("Each report needs a token.")
            if any(_has_control(item.get(name, "")) for name in ("token", "type", "url", "source")):
                raise ValidationFailed("Reports may not hold control characters.")
            reports.append(
                Reported(
                    token=item["token"],
                    token_type=item.get("type", ""),
                    url=item.get("url", ""),
                    source=item.get("source", ""),
                )
            )
        real = handle_reported(reports, reporter="github")
        return Response(
            [
                {
                    "token_hash": hashlib.sha256(
                        report.token.encode("utf-8", "surrogatepass")
                    ).hexdigest(),
                    "token_type": report.token_type,
                    "label": "true_positive" if report.token in real else "false_positive",
                }
                for report in reports
            ]
        )
