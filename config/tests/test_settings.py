from config import settings as production


def test_passwords_hash_with_argon2_first_in_production_settings():
    assert production.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_the_custom_user_is_the_auth_user_model():
    assert production.AUTH_USER_MODEL == "orgs.User"


def test_connection_health_checks_are_on():
    assert production.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def test_a_new_password_is_stored_as_argon2(db):
    from django.test import override_settings

    from orgs.models import User

    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        user = User.objects.create_user(email="argon@example.com", password="a long passphrase")
    assert user.password.startswith("argon2$")
    assert User.objects.get_by_natural_key("ARGON@example.com") == user
