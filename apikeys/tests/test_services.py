from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apikeys.models import APIKey
from apikeys.services import api_key_create, api_key_revoke, api_key_rotate, api_key_update
from audit.actors import Actor
from audit.models import AuditEvent
from config.errors import Forbidden, KeyRevoked, NotFound, ScopeNotAllowed, ValidationFailed
from orgs.roles import Role

SYSTEM = Actor.system("test")


def test_create_records_the_event_with_the_person_as_actor(org, owner):
    key, token = api_key_create(organization=org, actor=owner, name="Deploy bot")
    event = AuditEvent.objects.get(action="api_key.created", target_id=key.id)
    assert (event.actor_type, event.actor_id) == ("user", str(owner.pk))
    assert event.changes["name"] == {"before": None, "after": "Deploy bot"}
    assert token not in str(event.changes) and key.secret_hash not in str(event.changes)
    assert key.created_by == owner and key.created_by_type == "user"


def test_a_member_cannot_grant_beyond_their_role(org, add_member):
    org.members_can_create_keys = True
    org.save()
    member = add_member(org, Role.MEMBER)
    with pytest.raises(ScopeNotAllowed) as error:
        api_key_create(
            organization=org, actor=member, owner=member, name="x", scopes=["keys:write"]
        )
    assert error.value.extra["scopes"] == ["keys:write"]
    key, _ = api_key_create(organization=org, actor=member, owner=member, name="ok")
    granted = {"keys:read", "members:read", "usage:read", "bots:read", "bots:write"}
    assert granted <= set(key.scopes)
    assert not {"keys:write", "members:write", "audit:read", "admin"} & set(key.scopes)


def test_members_create_personal_keys_only_where_allowed(org, add_member):
    member = add_member(org, Role.MEMBER)
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=member, owner=member, name="x")
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=member, name="org key")
    assert not APIKey.objects.exists()


def test_viewers_never_create_keys(org, add_member):
    org.members_can_create_keys = True
    org.save()
    viewer = add_member(org, Role.VIEWER)
    with pytest.raises(Forbidden):
        api_key_create(organization=org, actor=viewer, owner=viewer, name="x")


def test_strangers_get_not_found(org, make_user):
    with pytest.raises(NotFound):
        api_key_create(organization=org, actor=make_user(), name="x")


def test_rotation_copies_fields_and_bounds_the_grace_by_the_old_expiry(org, owner):
    soon = timezone.now() + timedelta(minutes=10)
    key, _ = api_key_create(
        organization=org, actor=owner, name="n", scopes=["keys:read"], expires_at=soon,
        allowed_ips=["192.0.2.0/24"], rate_limit="100/min", environment="test",
    )  # fmt: skip
    new, token, old = api_key_rotate(key=key, actor=owner, grace_period=7 * 24 * 3600)
    assert old.expires_at == soon  # never later than its own expiry
    assert (new.name, new.scopes, new.environment, new.allowed_ips, new.rate_limit) == (
        "n", ["keys:read"], "test", ["192.0.2.0/24"], "100/min",
    )  # fmt: skip
    assert new.expires_at == soon
    assert token.startswith("kw_test_")


def test_a_rotated_key_cannot_be_rotated_again(org, owner):
    key, _ = api_key_create(organization=org, actor=owner, name="n")
    api_key_rotate(key=key, actor=owner, grace_period=60)
    with pytest.raises(KeyRevoked):
        api_key_rotate(key=key, actor=owner, grace_period=60)


def test_expired_keys_cannot_be_updated(org, owner):
    key, _ = api_key_create(organization=org, actor=owner, name="n")
    APIKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(KeyRevoked):
        api_key_update(key=key, actor=owner, name="new")


def test_unknown_update_fields_are_refused(org, owner):
    key, _ = api_key_create(organization=org, actor=owner, name="n")
    with pytest.raises(ValidationFailed) as error:
        api_key_update(key=key, actor=owner, secret_hash="0" * 64)
    assert "secret_hash" in error.value.extra["fields"]


def test_several_bad_fields_are_reported_together(org, owner):
    with pytest.raises(ValidationFailed) as error:
        api_key_create(organization=org, actor=owner, name="", rate_limit="fast", scopes=["x"])
    assert set(error.value.extra["fields"]) == {"name", "rate_limit", "scopes"}


def test_a_revoked_key_can_never_be_made_active_again(org, owner):
    key, _ = api_key_create(organization=org, actor=owner, name="n")
    api_key_revoke(key=key, actor=owner)
    with pytest.raises(KeyRevoked):
        api_key_update(key=key, actor=owner, expires_at=timezone.now() + timedelta(days=1))
    assert APIKey.objects.get(pk=key.pk).status == "revoked"


def test_database_refuses_rows_the_model_would_not_make(org, owner):
    key, _ = api_key_create(organization=org, actor=owner, name="n")
    for change in ({"environment": "prod"}, {"name": ""}, {"secret_hash": "not-hex"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            APIKey.objects.filter(pk=key.pk).update(**change)


def test_no_token_is_stored_anywhere_in_the_database(org, owner, make_key, client):
    from django.db import connection

    issued = [make_key(org)[1] for _ in range(3)]
    key, token = api_key_create(organization=org, actor=owner, name="n")
    new, rotated_token, _ = api_key_rotate(key=key, actor=owner, grace_period=60)
    issued += [token, rotated_token]
    for t in issued:
        client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {t}")
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dump.extend(str(row) for row in cursor.fetchall())
    text = "\n".join(dump)
    for t in issued:
        assert t not in text
        secret = t.split("_")[-1]
        assert secret not in text
