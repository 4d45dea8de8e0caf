"""Failed logins count per (account, address) and per address; one normal form for emails.

Nobody can lock an account knowing only its email: failures from other addresses
do not stop its owner; a password reset clears the account's counters; and an
address that PostgreSQL's case-insensitive comparison would fold onto another
(`v\u0131c` with a dotless i) is neither that account nor a second budget against it.
"""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.core import mail
from django.test import Client
from django.urls import reverse

from orgs.throttle import LoginThrottle

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another fine long passphrase"


def log_in(email: str, password: str, address: str) -> Client:
    client = Client(REMOTE_ADDR=address)
    client.response = client.post(reverse("login"), {"username": email, "password": password})
    return client


def logged_in(client: Client) -> bool:
    return client.response.status_code == 302 and "_auth_user_id" in client.session


def throttled(client: Client) -> bool:
    return b"Too many failed attempts" in client.response.content


def fail(email: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        assert not logged_in(log_in(email, "wrong password", address))


def reset_password(email: str, password: str, address: str = "192.0.2.200") -> None:
    client = Client(REMOTE_ADDR=address)
    mail.outbox.clear()
    assert client.post(reverse("password_reset"), {"email": email}).status_code == 302
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mail.outbox[-1].body).group(0)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password}
    )
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")


def test_failures_from_many_addresses_do_not_lock_the_owner_out(owner):
    for i in range(10):
        fail(owner.email, f"198.51.100.{i + 1}")
    assert logged_in(log_in(owner.email, PASSWORD, "203.0.113.10"))


def test_failures_from_one_address_lock_that_address_out_of_that_account(owner):
    fail(owner.email, "198.51.100.1", times=10)
    attacker = log_in(owner.email, PASSWORD, "198.51.100.1")
    assert throttled(attacker) and not logged_in(attacker)
    assert logged_in(log_in(owner.email, PASSWORD, "203.0.113.10"))


def test_the_pair_lock_message_offers_a_reset_and_a_reset_clears_it(owner):
    fail(owner.email, "198.51.100.1", times=10)
    locked = log_in(owner.email, PASSWORD, "198.51.100.1")
    assert throttled(locked)
    assert b"reset your password" in locked.response.content
    reset_password(owner.email, NEW_PASSWORD)
    assert logged_in(log_in(owner.email, NEW_PASSWORD, "198.51.100.1"))


def test_one_address_trying_many_accounts_is_locked_for_all_of_them(make_user):
    victim = make_user("victim@example.com")
    limit = LoginThrottle.address_limit
    for i in range(limit):
        fail(f"guess{i}@example.com", "198.51.100.7")
    locked = log_in(victim.email, PASSWORD, "198.51.100.7")
    assert throttled(locked) and not logged_in(locked)
    # The lock is the address's: a reset would not lift it, so the message does not offer one.
    assert b"reset your password" not in locked.response.content
    assert logged_in(log_in(victim.email, PASSWORD, "198.51.100.8"))


def test_a_successful_login_does_not_clear_the_address_counter(make_user):
    mine = make_user("mine@example.com")
    limit = LoginThrottle.address_limit
    for i in range(limit - 1):
        fail(f"guess{i}@example.com", "198.51.100.7")
    assert logged_in(log_in(mine.email, PASSWORD, "198.51.100.7"))
    fail("one-more@example.com", "198.51.100.7")
    assert throttled(log_in(mine.email, PASSWORD, "198.51.100.7"))


# One normal form for lookups and throttle keys, on every database


@pytest.fixture
def vic(make_user):
    return make_user("vic@example.com")


def test_a_dotless_i_is_not_the_account_with_an_i(vic):
    # PostgreSQL's UPPER() of a dotless i (U+0131) is 'I': a case-insensitive lookup found vic here.
    assert not logged_in(log_in("v\u0131c@example.com", PASSWORD, "198.51.100.1"))
    assert not logged_in(log_in("v\u0130c@example.com", PASSWORD, "198.51.100.2"))


def test_a_dotless_i_gets_no_way_around_an_account_under_attack(vic):
    # Before: ten failures locked vic, and "v\u0131c" logged in as vic on PostgreSQL
    # with a budget of its own.
    for i in range(10):
        fail(vic.email, f"198.51.100.{i + 1}")
    assert not logged_in(log_in("v\u0131c@example.com", PASSWORD, "203.0.113.9"))
    assert not logged_in(log_in("v\u0131c@example.com", PASSWORD, "198.51.100.1"))


def test_case_and_compatibility_forms_are_one_account_with_one_budget(make_user):
    sam = make_user("sam@example.com")
    fail("SAM@EXAMPLE.COM", "198.51.100.1", times=5)
    fail("\u017fam@example.com", "198.51.100.1", times=5)  # long s: NFKC makes it "s"
    assert throttled(log_in(sam.email, PASSWORD, "198.51.100.1"))
    assert logged_in(log_in("\u017fAM@Example.com", PASSWORD, "198.51.100.2"))


def test_a_stored_address_with_capitals_still_logs_in(db):
    from orgs.models import User

    # Rows written around the manager (raw SQL, an old import) may hold capitals;
    # the data migration brings them to the normal form, and the lookup uses it.
    user = User(email="Old.Timer@Example.com")
    user.set_password(PASSWORD)
    user.save()
    migration = importlib.import_module("orgs.migrations.0004_email_verification")
    migration.verify_existing_users(django_apps, None)
    migration.normalize_emails(django_apps, None)
    assert logged_in(log_in("old.timer@example.com", PASSWORD, "198.51.100.1"))
