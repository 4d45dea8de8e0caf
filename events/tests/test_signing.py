"""Standard Webhooks signatures, checked against the reference library, and sealed secrets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from events import sealing, signing


def test_secrets_are_whsec_and_32_random_bytes():
    raw = signing.new_secret()
    encoded = signing.encode_secret(raw)
    assert encoded.startswith("whsec_") and base64.b64decode(encoded[6:]) == raw
    assert len(raw) == 32 and signing.new_secret() != raw


def test_our_signature_is_the_reference_librarys():
    raw = signing.new_secret()
    body = '{"id":"evt_1","type":"webhook.test","data":{"name":"Zoë"}}'.encode()
    timestamp = 1_700_000_000
    ours = signing.signature(raw, "evt_1", timestamp, body)
    theirs = Webhook(signing.encode_secret(raw)).sign(
        "evt_1", datetime.fromtimestamp(timestamp, tz=UTC), body.decode()
    )
    assert ours == theirs


def test_headers_carry_one_signature_per_secret_in_force():
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "evt_2", 1_700_000_000, b"{}")
    assert headers["webhook-id"] == "evt_2"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].split(" ") == [
        signing.signature(new, "evt_2", 1_700_000_000, b"{}"),
        signing.signature(old, "evt_2", 1_700_000_000, b"{}"),
    ]


def test_a_sealed_secret_opens_only_for_its_endpoint(settings):
    raw = signing.new_secret()
    sealed = sealing.seal(raw, context="we_one")
    assert raw.hex() not in sealed and base64.b64encode(raw).decode() not in sealed
    assert sealing.unseal(sealed, context="we_one") == (raw, True)
    with pytest.raises(sealing.SealError):
        sealing.unseal(sealed, context="we_two")  # copied onto another endpoint
    assert sealing.seal(raw, context="we_one") != sealed  # a fresh nonce each time


def test_secret_key_rotation_with_a_fallback(settings):
    raw = signing.new_secret()
    sealed = sealing.seal(raw, context="we_one")
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    with pytest.raises(sealing.SealError):
        sealing.unseal(sealed, context="we_one")  # without the fallback: unreadable
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert sealing.unseal(sealed, context="we_one") == (raw, False)  # opens, not current
    assert not sealing.is_current(sealed)
    resealed = sealing.seal(raw, context="we_one")
    assert sealing.is_current(resealed)
    settings.SECRET_KEY_FALLBACKS = []
    assert sealing.unseal(resealed, context="we_one") == (raw, True)


@pytest.mark.django_db
def test_the_hourly_job_reseals_secrets_under_the_new_key(settings, org):
    from events.delivery import reseal_all
    from events.models import WebhookEndpoint
    from events.services import webhook_endpoint_create
    from events.tests.conftest import SYSTEM

    settings.KEYWARD_WEBHOOK_ALLOW_PRIVATE = True
    endpoint, secret = webhook_endpoint_create(
        organization=org, actor=SYSTEM, url="https://hooks.example.com/"
    )
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert reseal_all() == 1
    assert reseal_all() == 0
    settings.SECRET_KEY_FALLBACKS = []
    stored = WebhookEndpoint.objects.get()
    raw, current = sealing.unseal(stored.secret_sealed, context=endpoint.pk)
    assert current and signing.encode_secret(raw) == secret


def test_a_secret_handed_to_a_log_line_is_cut(caplog):
    import logging

    from config.logging import RedactTokensFilter, redact

    secret = signing.encode_secret(signing.new_secret())
    assert redact(f"signing with {secret}.") == "signing with whsec_…."
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "secret %s", (secret,), None)
    RedactTokensFilter().filter(record)
    assert secret[6:] not in record.getMessage()
