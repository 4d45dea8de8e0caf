"""What Keyward accepts at its edge: which characters, how deep a JSON body, how large a body.

The rules live here once; `config.middleware.RequestEdgeMiddleware` applies them to
the path, the query string, form bodies and cookies, and `config.content` to JSON
bodies. What they stop is listed in docs/README-security.md.

- A *control character* is one of Unicode's category Cc: U+0000-U+001F, U+007F and
  U+0080-U+009F. PostgreSQL cannot store U+0000 in text at all, and none of them
  belongs in a path, a query, a header or a name.
- A body (JSON or a form) may still carry tab, line feed and carriage return, which
  multi-line text needs; the fields that must be one line refuse them themselves.
- A JSON string may not hold a lone surrogate (U+D800-U+DFFF): no database can store
  one, and no UTF-8 encoder can write it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings

# Every control character: for paths, query strings, cookies and header values.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What a body may not hold: control characters but tab, LF and CR; lone surrogates.
BODY_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

MAX_JSON_DEPTH = 32
CONTROL_CHARACTER_MESSAGE = "Control characters (such as NUL) are not accepted here."


def has_control_characters(text: str) -> bool:
    """Return whether `text` holds a control character."""
    return CONTROL_CHARACTER.search(text) is not None


def body_text_is_acceptable(text: str) -> bool:
    """Return whether `text`, taken from a body, holds nothing a body may not."""
    return BODY_FORBIDDEN.search(text) is None


def without_control_characters(text: str) -> str:
    """Return `text` with its control characters removed, for header values kept on record."""
    return CONTROL_CHARACTER.sub("", text)


def max_body_bytes() -> int:
    """Return the largest request body Keyward reads (Django's DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_message() -> str:
    """Return the message of `413 payload_too_large`."""
    return f"The request body is larger than {max_body_bytes()} bytes."


def first_field_with(
    pairs: Iterable[tuple[str, list[str]]], *, acceptable=body_text_is_acceptable
) -> str | None:
    """Return the first field name of a QueryDict's `lists()` whose name or value is refused."""
    for name, values in pairs:
        if not acceptable(name) or not all(acceptable(value) for value in values):
            return name
    return None


class JSONTooDeep(ValueError):
    """The JSON document nests arrays and objects deeper than MAX_JSON_DEPTH."""


class JSONForbiddenText(ValueError):
    """A string of the JSON document (a name or a value) holds a refused character."""

    def __init__(self, field: str | None) -> None:
        super().__init__(field)
        self.field = field


def check_json_document(document: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise JSONTooDeep or JSONForbiddenText if the parsed document breaks a rule.

    Walks with an explicit stack, so a deep document cannot exhaust Python's own.
    `JSONForbiddenText.field` names the top-level member at fault, when there is one.
    """
    stack: list[tuple[Any, int, str | None]] = [(document, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, str):
            if not body_text_is_acceptable(value):
                raise JSONForbiddenText(field)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > max_depth:
            raise JSONTooDeep(f"nested deeper than {max_depth}")
        if isinstance(value, dict):
            for name, member in value.items():
                if not body_text_is_acceptable(name):
                    raise JSONForbiddenText(field)  # never echo the refused name itself
                stack.append((member, depth + 1, name if depth == 1 else field))
        else:
            stack.extend((item, depth + 1, field) for item in value)
