"""Keep tokens out of logs and error reports, whatever a careless line of code hands them.

Three layers, each enough on its own for what it covers:

- `RedactTokensFilter`, on every handler in `LOGGING`, cuts anything shaped like a
  token down to its public prefix (`kw_live_<key_id>_…`) in the message, its
  arguments, the traceback and the stack, so `logger.info(request.headers)` is safe;
- `KeywardExceptionReporterFilter` hides the `Authorization` and `Cookie` headers and
  any setting or header value that holds a token in Django's error reports;
- `KeywardExceptionReporter` masks tokens in the whole rendered report (frame
  variables and exception messages included) before it is shown or mailed.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from django.core.exceptions import ImproperlyConfigured
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from apikeys import tokens

# A webhook signing secret (docs/README-events.md), whatever code hands one to a log.
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{8,}")
# Used only if a record is logged before settings are configured: any brand.
_ANY_BRAND = re.compile(
    r"(?P<prefix>[a-z]{2,8}_(?:pub_)?(?:live|test|dev)_[0-9A-Za-z]{12})_[0-9A-Za-z]+"
)


def redact(text: str) -> str:
    """Return `text` with every token (or token-shaped text) cut to `<brand>_<env>_<key_id>_…`.

    Webhook signing secrets are cut to `whsec_…`. A token written with %-escapes
    (`kw%5Flive%5F…`, as a request line can carry it) is found too: such a text is
    given back decoded, with the token cut.
    """
    if "whsec_" in text:
        text = _WEBHOOK_SECRET.sub("whsec_…", text)
    if "%" in text:
        decoded = unquote(text)
        if decoded != text and any(f"_{env}_" in decoded for env in ("live", "test", "dev")):
            text = decoded
    if "_live_" not in text and "_test_" not in text and "_dev_" not in text:
        return text  # the fast path: most log lines hold no token at all
    try:
        pattern = tokens.token_search_pattern()
    except ImproperlyConfigured:
        pattern = _ANY_BRAND
    return pattern.sub(lambda m: f"{m.group('prefix')}_…", text)


class RedactTokensFilter(logging.Filter):
    """Mask tokens in a log record before any handler formats or writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we can, masked
            message = f"{record.msg} {record.args!r}"
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class KeywardExceptionReporterFilter(SafeExceptionReporterFilter):
    """Hide credentials, the pepper and any token-bearing value in error reports."""

    hidden_settings = re.compile(
        "API|AUTH|COOKIE|KEY|PASS|PEPPER|SECRET|SESSION|SIGNATURE|TOKEN", flags=re.I
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return redact(cleansed)
        return cleansed


class KeywardExceptionReporter(ExceptionReporter):
    """Django's error report, with every token in it masked (frame variables included)."""

    def get_traceback_html(self) -> str:
        return redact(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return redact(super().get_traceback_text())
