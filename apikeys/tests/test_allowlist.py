import pytest
from django.test import override_settings

from apikeys.models import APIKey


def whoami(client, token, remote, forwarded=None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}", "REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.get("/api/v1/whoami", **extra)


def assert_ip_not_allowed(response):
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ip_not_allowed"


@pytest.mark.parametrize(
    ("blocks", "inside", "outside"),
    [
        (["203.0.113.0/24"], "203.0.113.200", "203.0.114.1"),
        (["198.51.100.7/32"], "198.51.100.7", "198.51.100.8"),
        (["2001:db8:abcd::/48"], "2001:db8:abcd:12::1", "2001:db8:abce::1"),
        (["2001:db8::1/128", "192.0.2.0/24"], "2001:db8::1", "2001:db8::2"),
    ],
)
def test_allowed_ips_admit_inside_and_refuse_outside(
    client, org, make_key, blocks, inside, outside
):
    _, token = make_key(org, allowed_ips=blocks)
    assert whoami(client, token, inside).status_code == 200
    assert_ip_not_allowed(whoami(client, token, outside))


def test_an_ipv4_block_does_not_admit_ipv6_clients(client, org, make_key):
    _, token = make_key(org, allowed_ips=["0.0.0.0/0"])
    assert whoami(client, token, "192.0.2.1").status_code == 200
    assert_ip_not_allowed(whoami(client, token, "2001:db8::1"))


def test_x_forwarded_for_from_an_untrusted_client_does_not_get_past_an_allowlist(
    client, org, make_key
):
    _, token = make_key(org, allowed_ips=["203.0.113.0/24"])
    assert_ip_not_allowed(whoami(client, token, "198.51.100.9", forwarded="203.0.113.5"))


@override_settings(KEYWARD_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_trusted_proxy_passes_the_client_address_on(client, org, make_key):
    _, token = make_key(org, allowed_ips=["203.0.113.0/24"])
    assert whoami(client, token, "10.1.2.3", forwarded="203.0.113.5").status_code == 200
    assert whoami(client, token, "10.1.2.3", forwarded="203.0.113.5, 10.9.9.9").status_code == 200
    # The client wrote the left entry itself; the proxy saw it come from 198.51.100.9.
    assert_ip_not_allowed(whoami(client, token, "10.1.2.3", forwarded="203.0.113.5, 198.51.100.9"))
    # A proxy that is not trusted is the client, whatever it forwards.
    assert_ip_not_allowed(whoami(client, token, "172.16.0.1", forwarded="203.0.113.5"))


BAD_BLOCKS = [
    "203.0.113.1/24",  # host bits
    "2001:db8::1/64",  # host bits
    "203.0.113.0/33",  # prefix out of range
    "2001:db8::/129",  # prefix out of range
    "256.0.0.0/8",  # address out of range
    "not-a-block",
    "",
]


@pytest.mark.parametrize("block", BAD_BLOCKS)
def test_bad_blocks_are_refused_on_create_and_nothing_is_saved(api, org, make_key, block):
    _, token = make_key(org, scopes=["keys:write"])
    before = APIKey.objects.count()
    response = api(token).post(
        "/api/v1/keys", {"name": "ci", "allowed_ips": ["192.0.2.0/24", block]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "allowed_ips" in response.json()["error"]["fields"]
    assert APIKey.objects.count() == before


@pytest.mark.parametrize("block", BAD_BLOCKS)
def test_bad_blocks_are_refused_on_update_and_nothing_is_saved(api, org, make_key, block):
    _, token = make_key(org, scopes=["keys:write"])
    target, _ = make_key(org, allowed_ips=["192.0.2.0/24"])
    response = api(token).patch(
        f"/api/v1/keys/{target.pk}", {"allowed_ips": [block]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "allowed_ips" in response.json()["error"]["fields"]
    target.refresh_from_db()
    assert target.allowed_ips == ["192.0.2.0/24"]


def test_blocks_are_stored_normalised(api, org, make_key):
    _, token = make_key(org, scopes=["keys:write"])
    response = api(token).post(
        "/api/v1/keys",
        {"name": "ci", "allowed_ips": ["2001:DB8:0::/32", "192.0.2.0/24", "2001:db8::/32"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["key"]["allowed_ips"] == ["2001:db8::/32", "192.0.2.0/24"]
