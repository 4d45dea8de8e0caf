"""Keyward tokens: the one place that makes, parses, checks and hashes them.

A token reads `kw_<env>_<key_id>_<secret><checksum>`, and a publishable key's
`kw_pub_<env>_<key_id>_<secret><checksum>` (docs/reference/tokens.md,
docs/README-kinds.md). The checksum lets anyone reject a mistyped or invented token
without a database query; the keyed hash is all the database holds for a secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings
from django.core.signals import setting_changed

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ENVIRONMENTS = ("live", "test", "dev")
PUBLISHABLE_MARK = "pub"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
BRAND_RE = re.compile(r"^[a-z]{2,8}$")
# The longest token any allowed brand can make; longer input is refused unread.
MAX_TOKEN_LENGTH = 8 + 1 + 4 + 4 + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
_ENV_GROUP = "|".join(ENVIRONMENTS)


class MalformedToken(ValueError):
    """The text is not a well-formed token with a correct checksum."""


class ParsedToken(NamedTuple):
    """A token's parts. A named tuple: every request makes one, and a tuple is built cheaply."""

    environment: str
    key_id: str
    token: str
    publishable: bool = False

    @property
    def prefix(self) -> str:
        """Return the public prefix shown in lists, `kw_live_<key_id>` or `kw_pub_live_<key_id>`."""
        return self.token[: self.token.rindex("_")]

    @property
    def last4(self) -> str:
        return self.token[-4:]


# The settings every token check reads, kept between requests (a settings read is a
# lazy-object lookup, several per request otherwise); emptied when a test changes them.
_settings: dict[str, object] = {}


def _forget_settings(*, setting: str, **kwargs) -> None:
    if setting.startswith("KEYWARD_"):
        _settings.clear()


setting_changed.connect(_forget_settings)


def brand() -> str:
    """Return the deployment's token brand."""
    found = _settings.get("brand")
    if found is None:
        found = _settings["brand"] = settings.KEYWARD_TOKEN_BRAND
    return found


def prefix_of(*, environment: str, key_id: str, publishable: bool = False) -> str:
    """Return a key's public prefix: `kw_live_<key_id>`, or `kw_pub_live_<key_id>`."""
    mark = f"{PUBLISHABLE_MARK}_" if publishable else ""
    return f"{brand()}_{mark}{environment}_{key_id}"


def _prefix_re(brand_: str) -> str:
    """Return the pattern of a prefix; groups `pub`, `environment` and `key_id`."""
    return (
        rf"{re.escape(brand_)}_(?P<pub>{PUBLISHABLE_MARK}_)?(?P<environment>{_ENV_GROUP})_"
        rf"(?P<key_id>[0-9A-Za-z]{{{KEY_ID_LENGTH}}})"
    )


@lru_cache(maxsize=4)
def _token_re(brand_: str) -> re.Pattern[str]:
    return re.compile(rf"^{_prefix_re(brand_)}_[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}}$")


def token_pattern() -> re.Pattern[str]:
    """Return the regular expression of a whole token with this deployment's brand."""
    return _token_re(brand())


@lru_cache(maxsize=4)
def _search_re(brand_: str) -> re.Pattern[str]:
    return re.compile(rf"(?P<prefix>{_prefix_re(brand_)})_[0-9A-Za-z]+")


def token_search_pattern() -> re.Pattern[str]:
    """Return an unanchored pattern for anything in a text that starts like a token.

    It matches more than whole tokens (a truncated or padded one too), so that
    redaction errs on the side of masking; the group `prefix` is the public
    prefix, with `environment` and `key_id` inside it. Scanners confirm a match
    with `looks_like_token`, and take `token_length(prefix)` characters of it.
    """
    return _search_re(brand())


def token_length(prefix: str) -> int:
    """Return the length of a whole token that starts with `prefix`."""
    return len(prefix) + 1 + SECRET_LENGTH + CHECKSUM_LENGTH


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def base62(number: int, width: int) -> str:
    """Return `number` in base62, most significant digit first, left-padded with 0."""
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """Return the 6-character base62 CRC-32 of the token text before it.

    The same as base62(crc, 6), unrolled: every request computes one.
    """
    n, a = zlib.crc32(body.encode("ascii")), ALPHABET
    return (
        a[n // 916132832 % 62]  # 62**5; 62**6 > 2**32, so six digits always suffice
        + a[n // 14776336 % 62]
        + a[n // 238328 % 62]
        + a[n // 3844 % 62]
        + a[n // 62 % 62]
        + a[n % 62]
    )


def new_key_id() -> str:
    """Return a fresh random key id."""
    return _random(KEY_ID_LENGTH)


def generate(
    environment: str, key_id: str | None = None, *, publishable: bool = False
) -> ParsedToken:
    """Return a new token for `environment`; a publishable key's carries `pub_`."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}")
    key_id = key_id or new_key_id()
    prefix = prefix_of(environment=environment, key_id=key_id, publishable=publishable)
    body = f"{prefix}_{_random(SECRET_LENGTH)}"
    return ParsedToken(
        environment=environment,
        key_id=key_id,
        token=body + checksum(body),
        publishable=publishable,
    )


def parse(text: str) -> ParsedToken:
    """Return the parts of a well-formed token, or raise MalformedToken.

    Nothing but MalformedToken ever leaves this function, whatever `text` holds.
    """
    if not isinstance(text, str) or len(text) > MAX_TOKEN_LENGTH or not text.isascii():
        raise MalformedToken("not a token")
    pattern = _settings.get("pattern")
    if pattern is None:
        pattern = _settings["pattern"] = _token_re(brand())
    match = pattern.match(text)
    if match is None:
        raise MalformedToken("not a token")
    if not hmac.compare_digest(checksum(text[:-CHECKSUM_LENGTH]), text[-CHECKSUM_LENGTH:]):
        raise MalformedToken("bad checksum")
    publishable, environment, key_id = match.groups()  # the pattern's only groups, in order
    return ParsedToken(environment, key_id, text, publishable is not None)


def looks_like_token(text: str) -> bool:
    """Return whether `text` is a well-formed token with a correct checksum."""
    try:
        parse(text)
    except MalformedToken:
        return False
    return True


def _keyed(pepper: str) -> hmac.HMAC:
    return hmac.new(pepper.encode("utf-8"), digestmod=hashlib.sha256)


def _current_keyed() -> hmac.HMAC:
    """Return HMAC-SHA256 keyed with the current pepper, set up once per process.

    Keying costs as much as hashing a token; a copy of a keyed HMAC skips it.
    """
    found = _settings.get("keyed")
    if found is None:
        found = _settings["keyed"] = _keyed(settings.KEYWARD_PEPPER)
    return found


def hash_token(token: str, pepper: str | None = None) -> str:
    """Return HMAC-SHA256(pepper, token) as hex; the current pepper unless one is given."""
    mac = _current_keyed().copy() if pepper is None else _keyed(pepper)
    mac.update(token.encode("ascii"))
    return mac.hexdigest()


def check_hash(token: str, stored_hash: str) -> tuple[bool, bool]:
    """Return (matches, needs_upgrade): a match under a fallback pepper needs an upgrade."""
    if hmac.compare_digest(hash_token(token), stored_hash):
        return True, False
    for fallback in settings.KEYWARD_PEPPER_FALLBACKS:
        if hmac.compare_digest(hash_token(token, fallback), stored_hash):
            return True, True
    return False, False


def masked(prefix: str, last4: str) -> str:
    """Return the display form of a key, `kw_live_<key_id>_…<last4>`."""
    return f"{prefix}_…{last4}"
