"""Every API answer that carries a token tells every cache not to keep it."""

import json


def auth(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_create_and_rotate_answers_are_not_stored(client, org, make_key):
    _, token = make_key(org, scopes=["keys:read", "keys:write"])
    created = client.post(
        "/api/v1/keys",
        json.dumps({"name": "cached?", "scopes": ["keys:read"]}),
        content_type="application/json",
        **auth(token),
    )
    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    key_id = created.json()["key"]["id"]
    rotated = client.post(
        f"/api/v1/keys/{key_id}/rotate", "{}", content_type="application/json", **auth(token)
    )
    assert rotated.status_code == 201
    assert rotated["Cache-Control"] == "no-store"
