"""Bearer authentication with Keyward API keys, for any DRF view."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import OuterRef, Subquery
from django.db.models.base import ModelState
from django.utils.http import http_date
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from apikeys import kinds, tokens
from apikeys.abuse import InvalidKeyGuard
from apikeys.cache import verified_keys
from apikeys.models import APIKey, Status
from apikeys.refusals import key_refused
from apikeys.request_state import RequestState, request_state
from apikeys.throttling import KeyLimits, key_limits
from apikeys.usage import last_uses, usage_counter
from config.errors import ExpiredKey, InvalidKey, IpNotAllowed, KeywardError, RateLimited
from config.net import client_ip
from orgs.models import Membership, Organization

LAST_USED_REFRESH = timedelta(minutes=1)


class APIKeyRejected(AuthenticationFailed):
    """Carries the KeywardError that refused the key through DRF's authentication loop."""

    def __init__(self, error: KeywardError) -> None:
        super().__init__(error.message)
        self.keyward_error = error


@dataclass(frozen=True)
class OrganizationServiceUser:
    """The identity behind an organisation key: the organisation itself, never a person."""

    organization: Organization

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    @property
    def email(self) -> str:
        return ""

    def __str__(self) -> str:
        return f"{self.organization.slug} (organisation key)"


@dataclass
class KeyState:
    """What authentication needs of a key, as loaded in one query; cached per process."""

    key: APIKey
    owner_role: str | None
    # Worked out once per load rather than once per request (the state is immutable).
    _scopes: frozenset[str] | None = None
    _user: Any = None
    _limits: KeyLimits | None = None

    def scopes(self) -> frozenset[str]:
        """Return the scopes the key grants under its owner's role."""
        if self._scopes is None:
            self._scopes = self.key.effective_scopes_for(self.owner_role)
        return self._scopes

    def limits(self) -> KeyLimits:
        """Return what the throttles decide from the key and its organisation alone."""
        if self._limits is None:
            self._limits = key_limits(self.key)
        return self._limits

    def user(self) -> Any:
        """Return the identity behind the key: its owner, or its organisation."""
        if self._user is None:
            key = self.key
            self._user = (
                key.owner if key.owner_id is not None else OrganizationServiceUser(key.organization)
            )
        return self._user


def _load_state(key_id: str) -> KeyState | None:
    """Load the key, its organisation, its owner and the owner's role in one query."""
    role = Membership.objects.filter(
        user_id=OuterRef("owner_id"), organization_id=OuterRef("organization_id")
    ).values("role")[:1]
    key = (
        APIKey.objects.select_related("organization", "owner")
        .annotate(owner_role=Subquery(role))
        .filter(pk=key_id)
        .first()
    )
    if key is None:
        return None
    return KeyState(key=key, owner_role=key.owner_role)


def _request_copy(key: APIKey) -> APIKey:
    """Return a copy of a cached key that one request may change without touching the cache.

    The same as copy.copy() of the key (its fields and its cache of related
    objects are copied, the related objects themselves shared), without the
    pickling protocol copy.copy() goes through, and without ModelState's
    attribute-by-attribute set-up: two dict copies.
    """
    cached_state = key._state
    model_state = ModelState.__new__(ModelState)
    model_state.__dict__ = {
        "db": cached_state.db,
        "adding": cached_state.adding,
        "fields_cache": cached_state.fields_cache.copy(),
    }
    attrs = key.__dict__.copy()
    attrs["_state"] = model_state
    clone = APIKey.__new__(APIKey)
    clone.__dict__ = attrs
    return clone


def _owner_ok(state: KeyState) -> bool:
    """Return whether the key has no owner, or an active one who is still a member."""
    key = state.key
    return key.owner_id is None or (state.owner_role is not None and key.owner.is_active)


def _address_allowed(address: str | None, blocks: list[str]) -> bool:
    if not blocks:
        return True
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    for block in blocks:
        network = ipaddress.ip_network(block)
        if ip.version == network.version and ip in network:
            return True
    return False


# What an unknown key id is compared against, so that its refusal computes the
# same HMACs as a known id's; no token hashes to it (it is not hexadecimal).
_UNKNOWN_KEY_HASH = "-" * 64


def _cached_or_loaded(cache: Any, parsed: tokens.ParsedToken) -> tuple[KeyState | None, bool, bool]:
    """Return (state, matches, needs_upgrade): the key's state and whether the secret matches.

    One HMAC, and at most one lookup: a warm key with its secret costs no lookup.
    An unknown id always costs a lookup, and a key this process has cached would
    cost none; then the time of a 401 would tell which ids exist. So a secret that
    does not match the cached hash is looked up, as an unknown id is, before it is
    refused (the row may hold a newer hash), and an unknown id is compared against
    a hash nothing matches: every refusal computes one HMAC after one lookup.
    """
    cached = cache.get(parsed.key_id)
    if cached is not None:
        matches, needs_upgrade = tokens.check_hash(parsed.token, cached.key.secret_hash)
        if matches:
            return cached, True, needs_upgrade
        fresh = _load_state(parsed.key_id)
        if fresh is None or fresh.key.secret_hash == cached.key.secret_hash:
            return cached, False, False
        return (fresh, *tokens.check_hash(parsed.token, fresh.key.secret_hash))
    ticket = cache.ticket()
    state = _load_state(parsed.key_id)
    if state is None:
        tokens.check_hash(parsed.token, _UNKNOWN_KEY_HASH)  # the work a known id costs
        return None, False, False
    cache.put(parsed.key_id, state.key.organization_id, ticket, state)
    return (state, *tokens.check_hash(parsed.token, state.key.secret_hash))


class APIKeyAuthentication(BaseAuthentication):
    """Authenticate `Authorization: Bearer <key>` against Keyward keys."""

    keyword = "bearer"
    realm = "api"
    cache = verified_keys
    usage = usage_counter
    last_uses = last_uses
    invalid_key_guard = InvalidKeyGuard()

    def authenticate(self, request) -> tuple[Any, APIKey] | None:
        header = getattr(request, "_request", request).META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        parts = header.split()
        if parts and parts[0].lower() != self.keyword:
            if len(parts) == 1 and parts[0].startswith(f"{tokens.brand()}_"):
                return self._reject(request, InvalidKey("Send the key as 'Bearer <key>'."))
            return None  # another scheme: another authenticator's business
        shared = request_state(request)
        shared.token_presented = True
        if len(parts) != 2:
            return self._reject(request, InvalidKey())
        try:
            parsed = tokens.parse(parts[1])
        except tokens.MalformedToken:
            return self._reject(request, InvalidKey())
        return self.authenticate_token(request, parsed, shared)

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{self.realm}"'

    def authenticate_token(
        self, request, parsed: tokens.ParsedToken, shared: RequestState | None = None
    ) -> tuple[Any, APIKey]:
        """Check a well-formed token against its key and the key's state.

        `shared` is the request's state (apikeys/request_state.py) when the caller has it.
        """
        now = datetime.now(UTC)  # timezone.now() with USE_TZ, which Keyward requires
        state, matches, needs_upgrade = _cached_or_loaded(self.cache, parsed)
        if state is None:
            return self._reject(request, InvalidKey())
        shared = shared or request_state(request)
        shared.key_id = state.key.id  # known: its activity counts the refusal
        if not matches or state.key.environment != parsed.environment:
            return self._reject(request, InvalidKey())
        key = _request_copy(state.key)
        if needs_upgrade:
            self._upgrade_hash(key, parsed.token)
        status = key.status_at(now)
        if status == Status.REVOKED:
            self.on_revoked_key_used(request, key)
            return self._reject(request, InvalidKey())
        if status == Status.EXPIRED:
            return self._reject(request, ExpiredKey())
        if not _owner_ok(state):
            return self._reject(request, InvalidKey())
        target = getattr(request, "_request", request)
        address = getattr(target, "client_ip", None) or client_ip(target)
        if not _address_allowed(address, key.allowed_ips):
            raise APIKeyRejected(IpNotAllowed())
        refused = kinds.refusal(request, key)
        if refused is not None:
            raise APIKeyRejected(refused)
        key._effective_scopes = state.scopes()
        key._keyward_limits = state.limits()
        if status == Status.SUPERSEDED:
            shared.add_headers(
                {"Deprecation": "true", "Sunset": http_date(key.expires_at.timestamp())}
            )
        self._touch(request, key, address, now)
        return state.user(), key

    def _reject(self, request, error: KeywardError):
        key_refused(request, error)
        self.on_invalid_key(request, error)
        raise APIKeyRejected(error)

    def on_invalid_key(self, request, error: KeywardError) -> None:
        """Hook: a presented key was refused; an address over the limit gets 429."""
        if not isinstance(error, InvalidKey):
            return
        target = getattr(request, "_request", request)
        address = getattr(target, "client_ip", None) or client_ip(target)
        wait = self.invalid_key_guard.failed(address)
        if wait is not None:
            raise APIKeyRejected(
                RateLimited("Too many invalid keys from your address.", retry_after=wait)
            )

    def on_revoked_key_used(self, request, key: APIKey) -> None:
        """Hook: a revoked key was presented with its correct secret."""
        from audit.services import audit_revoked_key_used

        audit_revoked_key_used(key=key)

    def _upgrade_hash(self, key: APIKey, token: str) -> None:
        new_hash = tokens.hash_token(token)
        APIKey.objects.filter(pk=key.pk, secret_hash=key.secret_hash).update(secret_hash=new_hash)
        key.secret_hash = new_hash
        self.cache.forget(key.pk)

    def _touch(self, request, key: APIKey, address: str | None, now: datetime) -> None:
        """Count the request; note last_used_at on first use, then at most once a minute.

        Both are gathered in this process and written in the background (apikeys/usage.py).
        """
        self.usage.record(key.id)
        if key.last_used_at is not None and now - key.last_used_at < LAST_USED_REFRESH:
            return
        self.last_uses.record(key.id, now, address)
        key.last_used_at = now
        key.last_used_ip = address
        self.cache.note_use(key.pk, now, address)
