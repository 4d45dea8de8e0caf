"""The README's receiver (docs/webhook_receiver.py), in its own process, gets real deliveries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from apikeys.services import api_key_revoke
from events.services import webhook_endpoint_test
from events.tests.conftest import SYSTEM

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "webhook_receiver.py"

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_readme_receiver_verifies_and_prints_what_keyward_sends(
    org, make_key, make_endpoint, drain
):
    port = _free_port()
    endpoint, secret = make_endpoint(org, f"http://127.0.0.1:{port}/keyward")
    receiver = subprocess.Popen(
        [sys.executable, str(EXAMPLE), str(port)],
        env={**os.environ, "KEYWARD_WEBHOOK_SECRET": secret},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert receiver.stdout.readline().startswith("Listening")
        webhook_endpoint_test(endpoint=endpoint, actor=SYSTEM)
        key, _ = make_key(org, name="Mobile backend")
        api_key_revoke(key=key, actor=SYSTEM)
        drain()
        forged = urllib.request.Request(
            f"http://127.0.0.1:{port}/keyward",
            data=b'{"type": "api_key.revoked"}',
            headers={
                "webhook-id": "evt_forged",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,AAAA",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=5)  # noqa: S310
        assert refused.value.code == 400
    finally:
        receiver.terminate()
        output = receiver.communicate(timeout=10)[0]
    lines = output.splitlines()
    assert any(line.startswith("webhook.test ") for line in lines), output
    assert any(line.startswith(f"api_key.revoked {key.prefix} ") for line in lines), output
    assert "evt_forged" not in output
