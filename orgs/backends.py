"""Log in with an email and a password: throttled, by canonical email, verified people only."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from config.net import client_ip
from orgs.models import User
from orgs.throttle import LoginThrottle


def request_ip(request: HttpRequest | None) -> str | None:
    """Return the client address of `request` as the middleware found it, or None."""
    if request is None:
        return None
    if hasattr(request, "client_ip"):
        return request.client_ip
    return client_ip(request)


class EmailBackend(ModelBackend):
    """Django's model backend, with the login throttle in front of every password check.

    The throttle sits here rather than in one form so that every way in — the
    login page, the admin's login, the sign-up confirmation — shares one budget.
    A session keeps working only for a person whose address is verified.
    """

    throttle = LoginThrottle()

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if not username or password is None:
            return None
        ip = request_ip(request)
        if self.throttle.blocked(ip=ip, email=username):
            raise PermissionDenied("Too many failed attempts.")
        user = super().authenticate(request, username=username, password=password)
        if user is None:
            self.throttle.record_failure(ip=ip, email=username)
            return None
        self.throttle.forget_pair(ip=ip, email=username)
        return user

    def get_user(self, user_id: Any) -> User | None:
        user = super().get_user(user_id)
        if user is None or not user.is_email_verified:
            return None
        return user
