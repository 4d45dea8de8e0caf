"""docs/gitleaks.toml: its regular expression finds real tokens and passes near misses by."""

import math
import re
import secrets
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from apikeys import tokens

RULE_FILE = Path(settings.BASE_DIR) / "docs" / "gitleaks.toml"


@pytest.fixture(scope="module")
def rule():
    (only,) = tomllib.loads(RULE_FILE.read_text())["rules"]
    return only


def token(kind: str) -> str:
    """Return a token of `kind` ("live", "pub_test", …) as tokens.py builds them."""
    key_id = tokens.new_key_id()
    secret = "".join(secrets.choice(tokens.ALPHABET) for _ in range(tokens.SECRET_LENGTH))
    body = f"kw_{kind}_{key_id}_{secret}"
    return body + tokens.checksum(body)


KINDS = ["live", "test", "dev", "pub_live", "pub_test", "pub_dev"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "context",
    ["{}", "KEYWARD_KEY={}\n", 'headers = {{"Authorization": "Bearer {}"}}', "'{}'", "`{}`"],
)
def test_the_rule_finds_every_kind_of_token_in_common_settings(rule, kind, context):
    real = token(kind)
    match = re.search(rule["regex"], context.format(real))
    assert match is not None
    assert match.group(rule["secretGroup"]) == real
    assert any(keyword in real for keyword in rule["keywords"])


def shannon_entropy(text: str) -> float:
    """Return the entropy gitleaks computes for a secret: bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


@pytest.mark.parametrize("kind", KINDS)
def test_real_tokens_clear_the_rules_entropy_floor(rule, kind):
    assert min(shannon_entropy(token(kind)) for _ in range(200)) > rule["entropy"]


def test_the_live_tokens_keyward_mints_match(rule):
    for environment in tokens.ENVIRONMENTS:
        real = tokens.generate(environment).token
        assert re.fullmatch(rule["regex"], real)


@pytest.mark.parametrize(
    "near_miss",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t + "Z",  # one character too many, glued on
        lambda t: "x" + t,  # glued to a word in front
        lambda t: t.replace("kw_", "KW_", 1),
        lambda t: t.replace("kw_", "xx_", 1),
        lambda t: t.replace("_live_", "_prod_", 1),
        lambda t: t.replace("kw_live_", "kw_live-", 1),
        lambda t: t[: t.rindex("_")],  # the public prefix shown in lists
        lambda t: "kw_live_<key_id>_<secret><checksum>",
    ],
)
def test_near_misses_do_not_match(rule, near_miss):
    assert re.search(rule["regex"], near_miss(token("live"))) is None
