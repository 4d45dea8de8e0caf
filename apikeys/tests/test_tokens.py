import re
import zlib

import pytest
from django.test import override_settings

from apikeys import tokens


def test_generated_tokens_follow_the_documented_format():
    for environment in ("live", "test"):
        parsed = tokens.generate(environment)
        assert re.fullmatch(
            rf"kw_{environment}_[0-9A-Za-z]{{12}}_[0-9A-Za-z]{{38}}", parsed.token
        ), parsed.prefix
        assert len(parsed.token) == 59
        assert parsed.prefix == f"kw_{environment}_{parsed.key_id}"
        assert tokens.parse(parsed.token) == parsed


def test_checksum_is_base62_crc32_of_the_text_before_it():
    parsed = tokens.generate("live")
    body = parsed.token[:-6]
    number = zlib.crc32(body.encode())
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = tokens.ALPHABET[remainder] + digits
    assert parsed.token[-6:] == digits.rjust(6, "0")


def test_base62_pads_and_orders_most_significant_first():
    assert tokens.base62(0, 6) == "000000"
    assert tokens.base62(61, 6) == "00000z"
    assert tokens.base62(62, 6) == "000010"
    assert tokens.base62(2**32 - 1, 6) == "4gfFC3"


def test_tokens_are_unique():
    assert len({tokens.generate("live").token for _ in range(500)}) == 500


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # checksum changed
        lambda t: t.replace("_live_", "_prod_"),
        lambda t: "xx" + t[2:],
        lambda t: t[:-7] + t[-6:],  # one character short
        lambda t: t + "0",
        lambda t: t.upper(),
        lambda t: t.replace("_", "-"),
        lambda t: "",
        lambda t: "é" * 59,
        lambda t: t * 70,
    ],
)
def test_malformed_tokens_are_refused(mangle):
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(mangle(tokens.generate("live").token))


def test_every_single_character_change_fails_the_checksum():
    token = tokens.generate("live").token
    for position in range(len(token)):
        for replacement in "0aZ_":
            if token[position] == replacement:
                continue
            changed = token[:position] + replacement + token[position + 1 :]
            assert not tokens.looks_like_token(changed), (position, replacement)


def test_non_string_input_is_refused():
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(None)  # type: ignore[arg-type]


@override_settings(KEYWARD_TOKEN_BRAND="acme")
def test_brand_is_configurable():
    parsed = tokens.generate("test")
    assert parsed.token.startswith("acme_test_")
    assert tokens.parse(parsed.token).key_id == parsed.key_id


def test_keyed_hash_depends_on_the_pepper():
    token = tokens.generate("live").token
    with override_settings(KEYWARD_PEPPER="pepper-one"):
        first = tokens.hash_token(token)
    with override_settings(KEYWARD_PEPPER="pepper-two"):
        second = tokens.hash_token(token)
    assert first != second
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert token not in first


def test_fallback_pepper_matches_and_asks_for_an_upgrade():
    token = tokens.generate("live").token
    with override_settings(KEYWARD_PEPPER="old-pepper"):
        stored = tokens.hash_token(token)
    with override_settings(KEYWARD_PEPPER="new-pepper", KEYWARD_PEPPER_FALLBACKS=["old-pepper"]):
        assert tokens.check_hash(token, stored) == (True, True)
        assert tokens.check_hash(token, tokens.hash_token(token)) == (True, False)
    with override_settings(KEYWARD_PEPPER="new-pepper", KEYWARD_PEPPER_FALLBACKS=[]):
        assert tokens.check_hash(token, stored) == (False, False)


def test_masked_display_shows_prefix_and_last_four():
    parsed = tokens.generate("live")
    assert tokens.masked(parsed.prefix, parsed.last4) == f"{parsed.prefix}_…{parsed.token[-4:]}"


# Dev and publishable tokens (docs/README-kinds.md)


@pytest.mark.parametrize(
    ("environment", "publishable", "pattern", "length"),
    [
        ("dev", False, r"kw_dev_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}", 58),
        ("live", True, r"kw_pub_live_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}", 63),
        ("test", True, r"kw_pub_test_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}", 63),
        ("dev", True, r"kw_pub_dev_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}", 62),
    ],
)
def test_dev_and_publishable_tokens_follow_the_documented_format(
    environment, publishable, pattern, length
):
    parsed = tokens.generate(environment, publishable=publishable)
    assert re.fullmatch(pattern, parsed.token)
    assert len(parsed.token) == length
    again = tokens.parse(parsed.token)
    assert again == parsed
    assert (again.environment, again.publishable) == (environment, publishable)
    mark = "pub_" if publishable else ""
    assert again.prefix == f"kw_{mark}{environment}_{parsed.key_id}"
    # The checksum covers the `pub_` mark too: CRC-32 of everything before it.
    body = parsed.token[:-6]
    assert parsed.token[-6:] == tokens.base62(zlib.crc32(body.encode()), 6)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace("_pub_", "_", 1),  # the mark dropped: the checksum no longer holds
        lambda t: t.replace("kw_", "kw_pub_", 1),  # a mark added to a secret token
        lambda t: t.replace("_pub_", "_pk_", 1),
        lambda t: t.replace("_live_", "_prod_", 1),
        lambda t: t.replace("kw_pub_live_", "kw_live_pub_", 1),
    ],
)
def test_publishable_marks_cannot_be_added_removed_or_moved(mangle):
    token = tokens.generate("live", publishable=True).token
    assert token.startswith("kw_pub_live_")
    secret = tokens.generate("live").token
    for source in (token, secret):
        changed = mangle(source)
        if changed != source:
            assert not tokens.looks_like_token(changed), changed


def test_the_search_pattern_finds_every_kind_and_names_its_prefix():
    found = [
        tokens.generate("dev"),
        tokens.generate("live", publishable=True),
        tokens.generate("test"),
    ]
    text = " and ".join(f"x{p.token}" for p in found)
    prefixes = [m.group("prefix") for m in tokens.token_search_pattern().finditer(text)]
    assert prefixes == [p.prefix for p in found]
    assert [tokens.token_length(p.prefix) for p in found] == [len(p.token) for p in found]
