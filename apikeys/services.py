"""The key lifecycle: create, update, rotate, revoke. Each records its audit event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apikeys import resources as resource_registry
from apikeys import tokens, validation
from apikeys.cache import invalidate_when_committed
from apikeys.models import APIKey, Kind, PublishableToken, Status
from apikeys.origins import clean_allowed_origins
from audit.actors import Actor
from audit.services import audit_record, diff
from config.errors import (
    Forbidden,
    KeyRevoked,
    NotFound,
    ResourceNotAllowed,
    ScopeNotAllowed,
    ValidationFailed,
)
from orgs import scopes as scope_registry
from orgs.models import LeakResponse, Membership, Organization, User
from orgs.roles import Permission, scope_ceiling
from orgs.services import organization_lock

UPDATABLE_FIELDS = (
    "name",
    "scopes",
    "allowed_ips",
    "rate_limit",
    "expires_at",
    "allowed_origins",
    "resources",
)
DEFAULT_KEY_NAME = "DefaultKey"
DEFAULT_KEY_REASON = "made automatically for a new member (policy default_key_for_new_members)"


def _now():
    return timezone.now()


def _collect(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every check; raise one ValidationFailed naming every field at fault."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, check in checks.items():
        try:
            cleaned[name] = check()
        except ValidationFailed as exc:
            errors.update(exc.extra.get("fields") or {name: [exc.message]})
    if errors:
        raise ValidationFailed(fields=errors)
    return cleaned


def _membership(organization: Organization, user: User) -> Membership:
    membership = Membership.objects.filter(organization=organization, user=user).first()
    if membership is None:
        raise NotFound()
    return membership


def grantable_scopes(*, organization: Organization, actor: Any) -> frozenset[str]:
    """Return the scopes `actor` may put on a key: a role's ceiling or a key's own scopes."""
    if isinstance(actor, APIKey):
        return scope_registry.expand(actor.effective_scopes)
    if isinstance(actor, User):
        return scope_ceiling(_membership(organization, actor).role)
    return frozenset(scope_registry.registered_scopes())


def _check_grant(organization: Organization, actor: Any, scopes: list[str]) -> None:
    beyond = [
        s for s in scopes if s not in grantable_scopes(organization=organization, actor=actor)
    ]
    if beyond:
        raise ScopeNotAllowed(beyond)


def _held_scopes(organization: Organization, actor: Any) -> frozenset[str] | None:
    """Return the scopes `actor` holds, or None for the system, which holds them all."""
    if isinstance(actor, APIKey | User):
        return grantable_scopes(organization=organization, actor=actor)
    return None


def _check_within(key: APIKey, actor: Any) -> None:
    """Refuse a caller whose own scopes do not cover the key's effective scopes.

    Otherwise a narrow key could loosen (addresses, rate limit, expiry), rotate away
    or revoke a broader one: a caller changes only keys no more powerful than itself.
    """
    held = _held_scopes(key.organization, actor)
    if held is None or scope_registry.ADMIN_SCOPE in held:
        return
    beyond = scope_registry.ordered(scope_registry.expand(key.effective_scopes) - held)
    if beyond:
        error = ScopeNotAllowed(beyond)
        error.message = f"This key holds scopes you do not: {', '.join(beyond)}."
        raise error


def _acts_as_owner(actor: Any, owner_id: Any) -> bool:
    """Return whether `actor` is the person `owner_id`: their session or their own key."""
    if isinstance(actor, User):
        return actor.pk == owner_id
    if isinstance(actor, APIKey):
        return actor.owner_id is not None and actor.owner_id == owner_id
    if isinstance(actor, Actor):  # an operator in the admin, recorded as a user
        return actor.type == Actor.USER and actor.id == str(owner_id)
    return False


def api_key_mintable_by(*, key: APIKey, actor: Any) -> bool:
    """Return whether rotating `key` would hand `actor` a token it may hold.

    An organisation key's token acts as the organisation; a personal key's acts as
    its owner, so only the owner may obtain one.
    """
    return key.owner_id is None or _acts_as_owner(actor, key.owner_id)


def _check_may_manage(
    key: APIKey, actor: Any, permission: Permission | None = None, *, mints_token: bool = False
) -> None:
    """Refuse an actor who may not change `key`; update, rotate and revoke all ask here.

    - A person (or a person's key) who does not manage organisation keys touches only
      their own personal keys.
    - A caller changes only keys whose effective scopes lie within its own.
    - A token that acts as a person is minted only for that person: a personal key is
      rotated only by its owner, through their session or one of their own keys.
      Others may revoke it, which takes power away.
    """
    person = actor.owner if isinstance(actor, APIKey) else actor
    if isinstance(person, User):
        policy = _membership(key.organization, person).policy
        if not policy.can(Permission.MANAGE_ORG_KEYS):
            if key.owner_id != person.pk:
                raise NotFound()
            if permission is not None and not policy.can(permission):
                raise Forbidden("Your role does not allow this.")
    if mints_token and not api_key_mintable_by(key=key, actor=actor):
        raise Forbidden(
            "Only its owner can rotate a personal key, because its token acts as them. "
            "You can revoke it."
        )
    _check_within(key, actor)


def _default_scopes(
    organization: Organization, actor: Any, owner: User | None, kind: str = Kind.SECRET
) -> list[str]:
    grantable = grantable_scopes(organization=organization, actor=actor)
    if owner is not None:
        role = _membership(organization, owner).role
        grantable &= scope_ceiling(role)
    if kind == Kind.PUBLISHABLE:
        grantable &= scope_registry.public_scopes()
    return scope_registry.ordered(s for s in grantable if s != scope_registry.ADMIN_SCOPE)


def _check_kind_fields(kind: str, cleaned: dict[str, Any]) -> None:
    """Check what depends on the kind of key: origins, and a publishable key's scopes."""
    checks: dict[str, Callable[[], Any]] = {}
    if "allowed_origins" in cleaned:
        checks["allowed_origins"] = lambda: validation.check_origins_for_kind(
            kind, cleaned["allowed_origins"]
        )
    if cleaned.get("scopes") is not None:
        checks["scopes"] = lambda: validation.check_publishable_scopes(kind, cleaned["scopes"])
    _collect(checks)


def _check_resources(
    organization: Organization, actor: Any, owner: User | None, resources: Any
) -> dict[str, list[str]] | None:
    """Return the resources a key gets: inside a limited creating key's own, and real ids.

    A key limited to some resources makes keys limited to them by default, and
    never reaches further; a personal key's ids must be its owner's to reach.
    """
    ceiling = actor.resources if isinstance(actor, APIKey) else None
    if resources is None and ceiling is not None:
        resources = {name: list(ids) for name, ids in ceiling.items()}
    outside = resource_registry.beyond(resources, ceiling)
    if outside:
        names = ", ".join(sorted(outside))
        raise ResourceNotAllowed(names, f"You cannot grant {names} beyond your key's own.")
    resource_registry.check_resource_ids(resources, organization=organization, owner=owner)
    return resources


def _resolve_owner(organization: Organization, actor: Any, owner: User | None) -> User | None:
    """Decide whose key this is; refuse a person who may not create it."""
    if isinstance(actor, APIKey):
        # A key makes keys of its own kind: personal to the same person, or the organisation's.
        if owner is not None and not _acts_as_owner(actor, owner.pk):
            raise Forbidden("A personal key is created only by its owner.")
        return actor.owner
    if isinstance(actor, User):
        policy = _membership(organization, actor).policy
        if owner is None:
            if not policy.can(Permission.MANAGE_ORG_KEYS):
                raise Forbidden("Your role cannot create organisation keys.")
            return None
        if owner.pk == actor.pk and not policy.can(Permission.CREATE_PERSONAL_KEYS):
            raise Forbidden("Your organisation does not let members create keys.")
    if owner is not None:
        if not _acts_as_owner(actor, owner.pk):
            raise Forbidden(
                "A personal key is created only by its owner, because its token acts as them."
            )
        _membership(organization, owner)
    return owner


def _creator_fields(actor: Any) -> dict[str, Any]:
    who = Actor.of(actor)
    return {
        "created_by": actor if isinstance(actor, User) else None,
        "created_by_key": actor if isinstance(actor, APIKey) else None,
        "created_by_type": who.type,
        "created_by_label": who.label,
    }


def _insert_key(fields: dict[str, Any]) -> tuple[APIKey, str]:
    """Insert a key under a fresh id; return it with its token.

    A secret key's token is never stored. A publishable key's is, apart from
    the key, so that its page can show it again (docs/README-kinds.md).
    """
    publishable = fields.get("kind") == Kind.PUBLISHABLE
    for _attempt in range(5):
        parsed = tokens.generate(fields["environment"], publishable=publishable)
        key = APIKey(
            id=parsed.key_id,
            secret_hash=tokens.hash_token(parsed.token),
            last4=parsed.last4,
            **fields,
        )
        try:
            with transaction.atomic():
                key.save(force_insert=True)
        except IntegrityError:
            continue
        if publishable:
            PublishableToken.objects.create(key=key, token=parsed.token)
        return key, parsed.token
    raise RuntimeError("Could not find a free key id.")


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    actor: Any,
    name: Any,
    scopes: Any = None,
    environment: Any = "live",
    expires_at: Any = None,
    allowed_ips: Any = None,
    rate_limit: Any = None,
    owner: User | None = None,
    kind: Any = Kind.SECRET,
    allowed_origins: Any = None,
    resources: Any = None,
    reason: str | None = None,
) -> tuple[APIKey, str]:
    """Create a key; return it with its token.

    A secret key's token exists only in this return value. `reason`, when
    given, is recorded with the audit event (why the key was made).
    """
    now = _now()
    organization = organization_lock(organization.pk)
    cleaned = _collect(
        {
            "name": lambda: validation.clean_name(name),
            "kind": lambda: validation.clean_kind(kind),
            "scopes": lambda: None if scopes is None else validation.clean_scopes(scopes),
            "environment": lambda: validation.clean_environment(environment),
            "expires_at": lambda: validation.clean_expires_at(expires_at, organization, now),
            "allowed_ips": lambda: validation.clean_allowed_ips(allowed_ips),
            "allowed_origins": lambda: clean_allowed_origins(allowed_origins),
            "resources": lambda: resource_registry.clean_resources_shape(resources),
            "rate_limit": lambda: validation.clean_rate_limit(rate_limit),
        }
    )
    _check_kind_fields(cleaned["kind"], cleaned)
    owner = _resolve_owner(organization, actor, owner)
    if cleaned["scopes"] is None:
        cleaned["scopes"] = _default_scopes(organization, actor, owner, cleaned["kind"])
        _check_kind_fields(cleaned["kind"], {"scopes": cleaned["scopes"]})
    _check_grant(organization, actor, cleaned["scopes"])
    cleaned["resources"] = _check_resources(organization, actor, owner, cleaned["resources"])
    key, token = _insert_key(
        {
            "organization": organization,
            "owner": owner,
            "created_at": now,
            **_creator_fields(actor),
            **cleaned,
        }
    )
    audit_record(
        organization_id=organization.pk,
        action="api_key.created",
        actor=actor,
        target=key,
        changes=diff(
            {},
            {
                **key.audit_snapshot(),
                "kind": key.kind,
                "environment": key.environment,
                "owner": owner.email if owner else None,
                "reason": reason,
            },
        ),
    )
    return key, token


@transaction.atomic
def api_key_create_default(*, organization: Organization, user: User) -> tuple[APIKey, str] | None:
    """Give a person who has just joined their personal `DefaultKey`, where policy asks.

    Return the key and its token (to show once), or None when the organisation's
    `default_key_for_new_members` is off or the person's role may not hold
    personal keys. Sign-up and invitation acceptance call it in the transaction
    that adds the person; the audit event says the key was made automatically.
    """
    organization = organization_lock(organization.pk)
    if not organization.default_key_for_new_members:
        return None
    if not _membership(organization, user).policy.can(Permission.CREATE_PERSONAL_KEYS):
        return None
    # The person is the actor: a token that acts as them is minted only in their own
    # session (here, the confirmation or acceptance they just made); the event's reason
    # says that nobody asked for this key by hand.
    return api_key_create(
        organization=organization,
        actor=user,
        owner=user,
        name=DEFAULT_KEY_NAME,
        reason=DEFAULT_KEY_REASON,
    )


def _locked(key: APIKey) -> APIKey:
    """Lock the key's organisation, then the key; return the key as it is now."""
    organization = organization_lock(key.organization_id)
    key = APIKey.objects.select_for_update().get(pk=key.pk)
    key.organization = organization
    return key


def _refuse_if_finished(key: APIKey, now) -> None:
    status = key.status_at(now)
    if status == Status.REVOKED:
        raise KeyRevoked("This key is revoked and can no longer be changed.")
    if status == Status.EXPIRED:
        raise KeyRevoked("This key has expired and can no longer be changed.")


@transaction.atomic
def api_key_update(*, key: APIKey, actor: Any, **fields: Any) -> APIKey:
    """Change a key's name, scopes, allowed addresses, rate limit or expiry."""
    unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
    if unknown:
        raise ValidationFailed(fields={name: ["This field cannot be changed."] for name in unknown})
    now = _now()
    organization = key.organization
    checks: dict[str, Callable[[], Any]] = {
        "name": lambda: validation.clean_name(fields["name"]),
        "scopes": lambda: validation.clean_scopes(fields["scopes"]),
        "allowed_ips": lambda: validation.clean_allowed_ips(fields["allowed_ips"]),
        "rate_limit": lambda: validation.clean_rate_limit(fields["rate_limit"]),
        "allowed_origins": lambda: clean_allowed_origins(fields["allowed_origins"]),
        "resources": lambda: resource_registry.clean_resources_shape(fields["resources"]),
        "expires_at": lambda: (
            validation.clean_expires_at(fields["expires_at"], organization, now)
            if fields["expires_at"] is not None
            else validation.lifetime_cap(organization, now)
        ),
    }
    cleaned = _collect({name: checks[name] for name in fields})
    _check_kind_fields(key.kind, cleaned)
    key = _locked(key)
    _check_may_manage(key, actor)
    _refuse_if_finished(key, now)
    if "scopes" in cleaned:
        added = [s for s in cleaned["scopes"] if s not in key.scopes]
        _check_grant(key.organization, actor, added)
    if "resources" in cleaned:
        if cleaned["resources"] is None and isinstance(actor, APIKey) and actor.resources:
            raise ResourceNotAllowed(
                ", ".join(sorted(actor.resources)),
                "A key limited to some resources cannot lift another key's limit.",
            )
        cleaned["resources"] = _check_resources(
            key.organization, actor, key.owner, cleaned["resources"]
        )
    if "expires_at" in cleaned and key.replaced_by_id is not None:
        raise KeyRevoked("This key was rotated; change its replacement instead.")
    before = key.audit_snapshot()
    for name, value in cleaned.items():
        setattr(key, name, value)
    changes = diff(before, key.audit_snapshot())
    if not changes:
        return key
    key.save(update_fields=[*cleaned, "updated_at"])
    audit_record(
        organization_id=key.organization_id,
        action="api_key.updated",
        actor=actor,
        target=key,
        changes=changes,
    )
    invalidate_when_committed(key.organization_id)
    return key


@transaction.atomic
def api_key_rotate(*, key: APIKey, actor: Any, grace_period: Any = 0) -> tuple[APIKey, str, APIKey]:
    """Replace a key with a new one; the old one keeps working for the grace period.

    Return the new key, its token, and the old key.
    """
    grace = _collect({"grace_period": lambda: validation.clean_grace_period(grace_period)})[
        "grace_period"
    ]
    now = _now()
    old = _locked(key)
    _check_may_manage(old, actor, Permission.CREATE_PERSONAL_KEYS, mints_token=True)
    _refuse_if_finished(old, now)
    if old.replaced_by_id is not None:
        raise KeyRevoked(f"This key was already rotated; rotate {old.replaced_by_id} instead.")
    _check_grant(old.organization, actor, list(old.scopes))
    expires_at = old.expires_at
    cap = validation.lifetime_cap(old.organization, now)
    if cap is not None and (expires_at is None or expires_at > cap):
        expires_at = cap
    new, token = _insert_key(
        {
            "organization": old.organization,
            "owner": old.owner,
            "name": old.name,
            "environment": old.environment,
            "kind": old.kind,
            "scopes": list(old.scopes),
            "expires_at": expires_at,
            "allowed_ips": list(old.allowed_ips),
            "allowed_origins": list(old.allowed_origins),
            "resources": old.resources,
            "rate_limit": old.rate_limit,
            "created_at": now,
            **_creator_fields(actor),
        }
    )
    end_of_grace = now + timedelta(seconds=grace)
    old_expiry = old.expires_at
    if old.expires_at is None or old.expires_at > end_of_grace:
        old.expires_at = end_of_grace
    old.replaced_by = new
    old.save(update_fields=["replaced_by", "expires_at", "updated_at"])
    audit_record(
        organization_id=old.organization_id,
        action="api_key.rotated",
        actor=actor,
        target=old,
        changes={
            "replaced_by": {"before": None, "after": new.id},
            "expires_at": {
                "before": old_expiry.isoformat() if old_expiry else None,
                "after": old.expires_at.isoformat(),
            },
        },
    )
    audit_record(
        organization_id=old.organization_id,
        action="api_key.created",
        actor=actor,
        target=new,
        changes={
            **diff({}, {**new.audit_snapshot(), "kind": new.kind, "environment": new.environment}),
            "replaces": {"before": None, "after": old.id},
        },
    )
    invalidate_when_committed(old.organization_id)
    return new, token, old


def _revoke(key: APIKey, actor: Any, now, reason: str | None = None) -> None:
    key.revoked_at = now
    key.revoked_by = Actor.of(actor).label
    key.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
    if key.is_publishable:
        PublishableToken.objects.filter(key=key).delete()  # nothing left worth showing
    changes: dict[str, Any] = {"revoked_at": {"before": None, "after": now.isoformat()}}
    if reason:
        changes["reason"] = {"before": None, "after": reason}
    audit_record(
        organization_id=key.organization_id,
        action="api_key.revoked",
        actor=actor,
        target=key,
        changes=changes,
    )
    invalidate_when_committed(key.organization_id)


@transaction.atomic
def api_key_revoke(*, key: APIKey, actor: Any) -> APIKey:
    """Revoke a key at once, for every process; revoking twice changes nothing."""
    key = _locked(key)
    _check_may_manage(key, actor)
    if key.revoked_at is None:
        _revoke(key, actor, _now())
    return key


@transaction.atomic
def api_key_revoke_personal(*, organization: Organization, owner: User, actor: Any) -> int:
    """Revoke every personal key `owner` holds in the organisation; return how many."""
    now = _now()
    organization_lock(organization.pk)
    keys = list(
        APIKey.objects.select_for_update()
        .filter(organization=organization, owner=owner, revoked_at__isnull=True)
        .order_by("created_at")
    )
    for key in keys:
        _revoke(key, actor, now, reason="owner lost access")
    return len(keys)


@transaction.atomic
def api_key_leak_report(*, key: APIKey, reporter: str, url: str = "", source: str = "") -> bool:
    """Handle a key found in public: flag it, record where, and revoke it unless told not to.

    `reporter` is `github` or the reporting address; `url` and `source` say where the
    key was found. Return whether this report changed anything: a key already reported,
    revoked or expired is left as it is, so a second report of the same key is a no-op.
    The organisation's `leak_response` policy decides between revoking at once (the
    default) and leaving the key active, flagged, for its people to rotate.
    """
    now = _now()
    key = _locked(key)
    if key.leaked_at is not None or key.status_at(now) in (Status.REVOKED, Status.EXPIRED):
        return False
    actor = Actor.system("leak report")
    key.leaked_at = now
    key.save(update_fields=["leaked_at", "updated_at"])
    audit_record(
        organization_id=key.organization_id,
        action="api_key.leaked",
        actor=actor,
        target=key,
        changes={
            "leaked_at": {"before": None, "after": now.isoformat()},
            "reporter": {"before": None, "after": reporter},
            "url": {"before": None, "after": url or None},
            "source": {"before": None, "after": source or None},
        },
    )
    if key.organization.leak_response == LeakResponse.REVOKE:
        _revoke(key, actor, now, reason="leaked")
    return True
