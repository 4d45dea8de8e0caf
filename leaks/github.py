"""GitHub's secret-scanning public keys: fetched, cached, and used to verify leak reports.

GitHub signs each partner report with ECDSA P-256 / SHA-256 over the raw body and
names the key in `Github-Public-Key-Identifier`. The keys are published at
`KEYWARD_GITHUB_KEYS_URL` as `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
A set is trusted for an hour; when GitHub cannot be reached the last good set is
kept (public keys are not secret, and an old key still verifies only what it
signed); an identifier the set does not know triggers one refetch, at most once a
minute however many reports arrive, so a stream of made-up identifiers cannot make
Keyward hammer GitHub.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.core.cache import cache as default_cache

logger = logging.getLogger("keyward.leaks")

FRESH_KEY = "keyward:leaks:github-keys:fresh"
LAST_GOOD_KEY = "keyward:leaks:github-keys:last-good"
REFETCH_KEY = "keyward:leaks:github-keys:refetch"
MAX_KEYS_BYTES = 256 * 1024


class KeysUnavailable(Exception):
    """No key set could be fetched and none was ever fetched before."""


def _fetch_url(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's setting
        url, headers={"Accept": "application/json", "User-Agent": "Keyward leak verifier"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.read(MAX_KEYS_BYTES + 1)


def parse_key_set(raw: bytes) -> dict[str, str]:
    """Return `{key_identifier: PEM}` for every usable P-256 key in GitHub's answer.

    Raise ValueError when the answer holds none: garbage never replaces a good set.
    """
    if len(raw) > MAX_KEYS_BYTES:
        raise ValueError("the key set is larger than any real one")
    document = json.loads(raw)
    entries = document.get("public_keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("no public_keys list")
    keys: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        identifier, pem = entry.get("key_identifier"), entry.get("key")
        if not isinstance(identifier, str) or not isinstance(pem, str) or not identifier:
            continue
        try:
            public_key = load_pem_public_key(pem.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            continue
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
            public_key.curve, ec.SECP256R1
        ):
            keys[identifier] = pem
    if not keys:
        raise ValueError("no usable P-256 key in the set")
    return keys


class GitHubKeys:
    """The current set of GitHub's signing keys, as this deployment last saw it."""

    cache = default_cache
    clock = staticmethod(time.time)
    fetch: Callable[[str, float], bytes] = staticmethod(_fetch_url)
    fresh_for = 3600
    refetch_every = 60
    timeout = 5.0

    @property
    def url(self) -> str:
        return settings.KEYWARD_GITHUB_KEYS_URL

    def verify(self, body: bytes, key_identifier: str, signature: str) -> bool:
        """Return whether `signature` (base64 DER) by `key_identifier` signs `body`.

        Raise KeysUnavailable when no key set is known at all.
        """
        try:
            der = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        keys = self.keys()
        if key_identifier not in keys:
            keys = self._refetch_for_unknown() or keys
        pem = keys.get(key_identifier)
        if pem is None:
            return False
        public_key = load_pem_public_key(pem.encode("ascii"))
        try:
            public_key.verify(der, body, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
        except InvalidSignature:
            return False
        return True

    def keys(self) -> dict[str, str]:
        """Return the key set: fresh from the cache, else fetched, else the last good one."""
        fresh = self.cache.get(FRESH_KEY)
        if fresh is not None:
            return fresh
        fetched = self._fetch()
        if fetched is not None:
            return fetched
        last_good = self.cache.get(LAST_GOOD_KEY)
        if last_good is None:
            raise KeysUnavailable("GitHub's signing keys cannot be fetched.")
        return last_good

    def _refetch_for_unknown(self) -> dict[str, str] | None:
        """Fetch again for an identifier the set lacks, at most once per interval."""
        if not self.cache.add(REFETCH_KEY, 1, timeout=self.refetch_every):
            return None
        return self._fetch()

    def _fetch(self) -> dict[str, str] | None:
        try:
            keys = parse_key_set(self.fetch(self.url, self.timeout))
        except (OSError, ValueError, RecursionError) as exc:
            logger.warning("GitHub's secret-scanning keys could not be fetched: %s", exc)
            return None
        self.cache.set(FRESH_KEY, keys, timeout=self.fresh_for)
        self.cache.set(LAST_GOOD_KEY, keys, timeout=None)
        return keys


def verify_report(body: bytes, headers: Any, keys: GitHubKeys | None = None) -> bool:
    """Return whether a request's GitHub signature headers verify its raw body."""
    identifier = headers.get("Github-Public-Key-Identifier") or ""
    signature = headers.get("Github-Public-Key-Signature") or ""
    if not identifier or not signature or len(identifier) > 200 or len(signature) > 400:
        return False
    return (keys or GitHubKeys()).verify(body, identifier, signature)
