"""Sign-up confirms the address before anyone can use the account; public forms are throttled.

The answer to a sign-up never says whether the address has an account; the
account cannot log in, and its organisation does not exist, until the link
from the email is opened and the password typed again.
"""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.core import mail
from django.core.management import call_command
from django.test import Client, TestCase
from django.urls import reverse

from audit.models import AuditEvent
from orgs.models import Membership, Organization, User
from orgs.roles import Role
from orgs.services import invitation_create
from orgs.throttle import PasswordResetThrottle, SignupThrottle

PASSWORD = "a fine long password"
OTHER_PASSWORD = "quite another passphrase"


def sign_up(email: str, password: str = PASSWORD, name: str = "Acme Ltd", address="192.0.2.1"):
    client = Client(REMOTE_ADDR=address)
    data = {"email": email, "password": password, "organization_name": name}
    with TestCase.captureOnCommitCallbacks(execute=True):  # the email goes on commit
        return client, client.post(reverse("signup"), data)


def confirm_link(to: str) -> str:
    messages = [m for m in mail.outbox if to in m.to and "/signup/confirm/" in m.body]
    assert messages, f"no confirmation email to {to}"
    return re.search(r"https?://\S+/signup/confirm/\S+/", messages[-1].body).group(0)


def nonce_of(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)


def log_in(email: str, password: str, address: str = "192.0.2.50"):
    client = Client(REMOTE_ADDR=address)
    return client, client.post(reverse("login"), {"username": email, "password": password})


def visible_text(response) -> str:
    html = response.content.decode()
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


# The sign-up flow


def test_sign_up_sends_a_link_and_creates_nothing_usable(db):
    client, response = sign_up("new@example.com")
    assert response.status_code == 200
    assert "Check your email" in response.content.decode()
    assert not Organization.objects.exists()
    user = User.objects.get(email="new@example.com")
    assert user.email_verified_at is None
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    # The right password is not enough to log in yet, and the page says why.
    login_client, login = log_in("new@example.com", PASSWORD)
    assert "_auth_user_id" not in login_client.session
    assert "Confirm your email address first" in login.content.decode()


def test_the_link_and_the_password_confirm_the_address_and_create_the_organisation(db):
    sign_up("new@example.com")
    link = confirm_link("new@example.com")
    client = Client(REMOTE_ADDR="192.0.2.1")
    page = client.get(link)
    assert page.status_code == 200 and "Confirm your email address" in page.content.decode()
    assert not Organization.objects.exists()  # opening the link changes nothing
    response = client.post(link, {"password": PASSWORD})
    org = Organization.objects.get(name="Acme Ltd")
    # The landing page shows the new owner's DefaultKey once, then leads to the keys page.
    assert response.status_code == 200
    assert reverse("keys", kwargs={"slug": org.slug}) in response.content.decode()
    assert Membership.objects.get(organization=org).role == Role.OWNER
    assert AuditEvent.objects.filter(organization=org, action="org.created").exists()
    assert client.get(reverse("keys", kwargs={"slug": org.slug})).status_code == 200
    assert User.objects.get(email="new@example.com").email_verified_at is not None
    assert log_in("new@example.com", PASSWORD)[1].status_code == 302


def test_the_link_works_once(db):
    sign_up("new@example.com")
    link = confirm_link("new@example.com")
    assert Client().post(link, {"password": PASSWORD}).status_code == 200
    again = Client().post(link, {"password": PASSWORD})
    assert again.status_code == 404
    assert Organization.objects.count() == 1


def test_the_link_needs_the_password_chosen_at_sign_up(db):
    sign_up("new@example.com")
    link = confirm_link("new@example.com")
    response = Client().post(link, {"password": "not the one I chose"})
    assert response.status_code == 400
    assert "not the password" in response.content.decode()
    assert User.objects.get(email="new@example.com").email_verified_at is None
    assert not Organization.objects.exists()


@pytest.mark.parametrize("token", ["nonsense", "a" * 2000, "e30:1vQb2A:forged-signature"])
def test_a_forged_link_is_refused(db, token):
    assert Client().get(reverse("signup-confirm", kwargs={"token": token})).status_code == 404


def test_someone_who_signs_up_with_another_persons_address_cannot_get_in(db):
    sign_up(
        "victim@example.com", password="the attacker's password", name="Evil", address="1.1.1.1"
    )
    attackers_link = confirm_link("victim@example.com")
    # The victim signs up later with their own password; the first link dies.
    sign_up("victim@example.com", password=OTHER_PASSWORD, name="Victim Co", address="2.2.2.2")
    assert Client().post(attackers_link, {"password": "the attacker's password"}).status_code == 404
    # The victim opens the newest link and confirms with their password.
    link = confirm_link("victim@example.com")
    assert Client().post(link, {"password": OTHER_PASSWORD}).status_code == 200
    assert list(Organization.objects.values_list("name", flat=True)) == ["Victim Co"]
    assert "_auth_user_id" not in log_in("victim@example.com", "the attacker's password")[0].session


def test_the_mailbox_owner_cannot_be_tricked_into_confirming_someone_elses_password(db):
    sign_up("victim@example.com", password="the attacker's password", name="Evil")
    link = confirm_link("victim@example.com")
    # The victim opens the link they did not ask for: they do not know that password.
    assert Client().post(link, {"password": OTHER_PASSWORD}).status_code == 400
    assert User.objects.get(email="victim@example.com").email_verified_at is None


def test_the_answer_does_not_say_whether_an_account_exists(make_user):
    existing = make_user("taken@example.com", password=PASSWORD)
    sign_up("pending@example.com", name="Pending")
    mail.outbox.clear()
    answers = {}
    for email in ("taken@example.com", "pending@example.com", "fresh@example.com"):
        _, response = sign_up(email, password=OTHER_PASSWORD, name="Kept Co", address="192.0.2.9")
        answers[email] = (response.status_code, visible_text(response).replace(email, "EMAIL"))
    assert len(set(answers.values())) == 1, answers
    # The owner of the existing account is told by email; their password is unchanged.
    told = [m for m in mail.outbox if m.to == ["taken@example.com"]]
    assert len(told) == 1 and "You already have an account" in told[0].body
    assert "/signup/confirm/" not in told[0].body
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD)
    assert Organization.objects.filter(name="Kept Co").count() == 0


def test_sign_up_refuses_an_address_with_a_dotless_i(db):
    _, response = sign_up("v\u0131c@example.com")
    assert response.status_code == 200
    assert "Enter a valid email address" in response.content.decode()
    assert not User.objects.exists() and not mail.outbox


# Other ways to a verified address


def test_an_invitation_verifies_the_address(org, owner):
    _, token = invitation_create(
        organization=org, email="invited@example.com", role="member", actor=owner
    )
    client = Client()
    url = reverse("invitation-accept", kwargs={"token": token})
    response = client.post(url, {"password": PASSWORD, "nonce": nonce_of(client.get(url))})
    assert response.status_code in (200, 302)  # 200: the page that shows a DefaultKey
    assert Membership.objects.filter(organization=org, user__email="invited@example.com").exists()
    assert User.objects.get(email="invited@example.com").email_verified_at is not None
    assert log_in("invited@example.com", PASSWORD)[1].status_code == 302


def test_an_invitation_takes_over_an_address_that_never_confirmed_a_sign_up(org, owner):
    sign_up("invited@example.com", password="someone else's password")
    _, token = invitation_create(
        organization=org, email="invited@example.com", role="member", actor=owner
    )
    client = Client()
    url = reverse("invitation-accept", kwargs={"token": token})
    page = client.get(url)
    assert "Create account and join" in page.content.decode()
    response = client.post(url, {"password": PASSWORD, "nonce": nonce_of(page)})
    assert response.status_code in (200, 302)  # 200: the page that shows a DefaultKey
    assert Membership.objects.filter(organization=org, user__email="invited@example.com").exists()
    assert log_in("invited@example.com", PASSWORD)[1].status_code == 302
    assert log_in("invited@example.com", "someone else's password")[1].status_code == 200


def test_a_password_reset_verifies_the_address(db):
    sign_up("forgetful@example.com")
    mail.outbox.clear()
    client = Client()
    client.post(reverse("password_reset"), {"email": "forgetful@example.com"})
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mail.outbox[-1].body).group(0)
    form_page = client.get(link, follow=True)
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": OTHER_PASSWORD, "new_password2": OTHER_PASSWORD},
    )
    assert User.objects.get(email="forgetful@example.com").email_verified_at is not None
    assert log_in("forgetful@example.com", OTHER_PASSWORD)[1].status_code == 302


def test_a_session_of_an_unverified_person_is_not_honoured(org, make_user):
    user = User.objects.create_user(
        email="late@example.com", password=PASSWORD, email_verified=False
    )
    client = Client()
    client.force_login(user)
    assert client.get(reverse("org-create")).status_code == 302  # sent to log in


def test_people_who_existed_before_count_as_verified(db):
    user = User(email="old@example.com")
    user.save()
    assert user.email_verified_at is None
    migration = importlib.import_module("orgs.migrations.0004_email_verification")
    migration.verify_existing_users(django_apps, None)
    user.refresh_from_db()
    assert user.email_verified_at == user.date_joined


def test_createorg_and_seeddemo_people_are_verified(db, capsys):
    call_command("createorg", "cli-co", "--name", "CLI Co", "--owner", "cli@example.com")
    call_command("seeddemo")
    for email in ("cli@example.com", "owner@demo.keyward.local"):
        assert User.objects.get(email=email).email_verified_at is not None


# Throttles on the public forms


def test_sign_up_is_throttled_per_address(db):
    for i in range(SignupThrottle.address_limit):
        assert sign_up(f"person{i}@example.com", address="198.51.100.1")[1].status_code == 200
    _, refused = sign_up("one-more@example.com", address="198.51.100.1")
    assert refused.status_code == 429
    assert "Too many sign-ups from your address" in refused.content.decode()
    assert not User.objects.filter(email="one-more@example.com").exists()
    assert sign_up("one-more@example.com", address="198.51.100.2")[1].status_code == 200


def test_sign_up_emails_to_one_address_are_throttled(db):
    for i in range(SignupThrottle.email_limit):
        sign_up("target@example.com", address=f"198.51.100.{i + 1}")
    assert len(mail.outbox) == SignupThrottle.email_limit
    _, refused = sign_up("target@example.com", address="198.51.100.99")
    assert refused.status_code == 429
    assert len(mail.outbox) == SignupThrottle.email_limit


def test_password_reset_emails_to_one_address_are_throttled(org, owner):
    for i in range(8):
        Client(REMOTE_ADDR=f"198.51.100.{i + 1}").post(
            reverse("password_reset"), {"email": owner.email}
        )
    assert len(mail.outbox) == PasswordResetThrottle.email_limit


def test_password_resets_from_one_address_are_throttled(make_user):
    client = Client(REMOTE_ADDR="198.51.100.1")
    for i in range(PasswordResetThrottle.address_limit):
        user = make_user(f"reset{i}@example.com")
        assert client.post(reverse("password_reset"), {"email": user.email}).status_code == 302
    refused = client.post(reverse("password_reset"), {"email": "reset0@example.com"})
    assert refused.status_code == 429
    assert "Too many reset requests from your address" in refused.content.decode()
    assert len(mail.outbox) == PasswordResetThrottle.address_limit


def test_createorg_verifies_an_owner_who_never_confirmed(db):
    sign_up("pending@example.com", name="Never Made")
    call_command("createorg", "made-by-ops", "--name", "Made", "--owner", "pending@example.com")
    assert User.objects.get(email="pending@example.com").email_verified_at is not None
