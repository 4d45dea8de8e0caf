"""What the API reads and writes: JSON bodies within the edge's limits, JSON answers.

`JSONBodyParser` is the API's only parser. A body that is not UTF-8 JSON, nests deeper
than `config.input.MAX_JSON_DEPTH`, or holds a character `config.input` refuses is
`400 validation_error`, with a message of our own rather than the parser's; a body
over the size limit is `413 payload_too_large`.

`FirstRendererIfNoneAccepted` answers an `Accept` header that no renderer satisfies
(or an unknown `?format=`) with the view's first renderer, JSON, instead of a `406`
or a `404`: an API client always gets the body its documentation promises.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser

from config.errors import PayloadTooLarge, ValidationFailed
from config.input import (
    CONTROL_CHARACTER_MESSAGE,
    MAX_JSON_DEPTH,
    JSONForbiddenText,
    JSONTooDeep,
    check_json_document,
    max_body_bytes,
    too_large_message,
)

NOT_JSON = "The request body is not valid JSON."
TOO_DEEP = f"The JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels."


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity are JavaScript, not JSON


class JSONBodyParser(JSONParser):
    """Parse a UTF-8 JSON body within the size, depth and character limits of config.input."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = max_body_bytes()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(too_large_message())
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("The request body is not UTF-8.") from None
        try:
            document = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as error:
            raise ValidationFailed(
                f"The request body is not valid JSON (line {error.lineno}, column {error.colno})."
            ) from None
        except RecursionError:
            raise ValidationFailed(TOO_DEEP) from None
        except ValueError:  # an integer of more digits than Python converts, for one
            raise ValidationFailed(NOT_JSON) from None
        try:
            check_json_document(document)
        except JSONTooDeep:
            raise ValidationFailed(TOO_DEEP) from None
        except JSONForbiddenText as error:
            if error.field is None:
                raise ValidationFailed(CONTROL_CHARACTER_MESSAGE) from None
            raise ValidationFailed.on(error.field, CONTROL_CHARACTER_MESSAGE) from None
        return document


class FirstRendererIfNoneAccepted(DefaultContentNegotiation):
    """Pick the renderer the request asks for, else the view's first one; never refuse."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except (exceptions.NotAcceptable, Http404):
            return renderers[0], renderers[0].media_type
