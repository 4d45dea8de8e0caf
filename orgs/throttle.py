"""Throttles on the public forms, through the shared cache: login, password reset, sign-up.

Counters are fixed windows in the cache. Addresses are counted as the client's
address, an IPv6 client by its /64 (one host usually holds the whole network);
accounts by a hash of the canonical email (`orgs.models.canonical_email`), the
same form the login looks people up by. If the cache cannot be reached the
throttles let requests through and log it: a lost cache must not lock everyone out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets

from django.core.cache import cache as default_cache

from config.net import parse_ip
from orgs.models import canonical_email

logger = logging.getLogger("keyward.throttle")


def address_key(ip: str | None) -> str | None:
    """Return what an address is counted as: the IPv4 address, or the IPv6 /64."""
    address = parse_ip(ip)
    if address is None:
        return None
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def account_key(email: str) -> str:
    """Return what an email address is counted as: a hash of its canonical form."""
    return hashlib.sha256(canonical_email(email).encode()).hexdigest()[:32]


class AttemptCounter:
    """Count attempts per key in fixed windows of the shared cache."""

    cache = default_cache
    window = 15 * 60
    prefix = "keyward:attempts"

    def counts(self, keys: list[str]) -> dict[str, int]:
        """Return the current count of each key (absent keys count 0)."""
        try:
            found = self.cache.get_many(keys)
        except Exception:
            logger.warning("Shared cache unreachable: %s is not enforced.", type(self).__name__)
            return {}
        return {key: int(value) for key, value in found.items()}

    def add(self, keys: list[str]) -> None:
        """Count one attempt against each key."""
        try:
            for key in keys:
                self.cache.add(key, 0, self.window)
                try:
                    self.cache.incr(key)
                except ValueError:  # expired between add and incr: start again
                    self.cache.set(key, 1, self.window)
        except Exception:
            logger.warning("Shared cache unreachable: %s is not counting.", type(self).__name__)


class LoginThrottle(AttemptCounter):
    """Refuse logins after too many failures from one address to one account, or from one address.

    Counting per (account, address) and per address, never per account alone,
    means that nobody can lock an account knowing only its email: failures from
    elsewhere do not touch its owner's budget. A password reset gives the
    account new pair counters (a new generation), so the reset lifts its locks.
    """

    pair_limit = 10
    address_limit = 30
    window = 15 * 60
    prefix = "keyward:login"

    ACCOUNT = "account"
    ADDRESS = "address"

    def _generation(self, account: str) -> str:
        try:
            return self.cache.get(f"{self.prefix}:gen:{account}") or "0"
        except Exception:
            return "0"

    def _keys(self, ip: str | None, email: str) -> tuple[str, str | None]:
        account = account_key(email)
        address = address_key(ip)
        generation = self._generation(account)
        pair = f"{self.prefix}:pair:{account}:{generation}:{address or 'unknown'}"
        return pair, (f"{self.prefix}:addr:{address}" if address else None)

    def blocked(self, *, ip: str | None, email: str) -> str | None:
        """Return why a login is refused now (`ACCOUNT` or `ADDRESS`), or None."""
        pair, address = self._keys(ip, email)
        counts = self.counts([key for key in (pair, address) if key])
        if address and counts.get(address, 0) >= self.address_limit:
            return self.ADDRESS
        if counts.get(pair, 0) >= self.pair_limit:
            return self.ACCOUNT
        return None

    def record_failure(self, *, ip: str | None, email: str) -> None:
        """Count one failed attempt against the (account, address) pair and the address."""
        self.add([key for key in self._keys(ip, email) if key])

    def forget_pair(self, *, ip: str | None, email: str) -> None:
        """Forget an account's failures from this address after its owner logs in from it.

        The address's own counter stays: logging in to one's own account between
        guesses at others must not refill the budget.
        """
        try:
            self.cache.delete(self._keys(ip, email)[0])
        except Exception:
            logger.warning("Shared cache unreachable: login failures not forgotten.")

    def forget_account(self, *, email: str) -> None:
        """Forget the account's failures from every address (after a password reset)."""
        try:
            self.cache.set(
                f"{self.prefix}:gen:{account_key(email)}", secrets.token_hex(8), timeout=None
            )
        except Exception:
            logger.warning("Shared cache unreachable: login failures not forgotten.")


class FormThrottle(AttemptCounter):
    """Refuse a public form after too many submissions from one address or for one email."""

    address_limit = 5
    email_limit = 3
    window = 60 * 60
    prefix = "keyward:form"

    ADDRESS = "address"
    EMAIL = "email"

    def _keys(self, ip: str | None, email: str) -> tuple[str | None, str]:
        address = address_key(ip)
        return (
            f"{self.prefix}:addr:{address}" if address else None,
            f"{self.prefix}:email:{account_key(email)}",
        )

    def hit(self, *, ip: str | None, email: str) -> str | None:
        """Count a submission; return why it is refused (`ADDRESS` or `EMAIL`), or None.

        A refused submission is not counted, so that a flood cannot extend its own wait.
        """
        address, target = self._keys(ip, email)
        counts = self.counts([key for key in (address, target) if key])
        if address and counts.get(address, 0) >= self.address_limit:
            return self.ADDRESS
        if counts.get(target, 0) >= self.email_limit:
            return self.EMAIL
        self.add([key for key in (address, target) if key])
        return None


class PasswordResetThrottle(FormThrottle):
    """Reset emails: 5 an hour from one address, 3 an hour to one address."""

    prefix = "keyward:reset"


class SignupThrottle(FormThrottle):
    """Sign-ups: 5 an hour from one address, 3 verification emails an hour to one address."""

    prefix = "keyward:signup"
