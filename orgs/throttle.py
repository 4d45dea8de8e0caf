"""Failed-login throttling, per client address and per account, through the shared cache."""

from __future__ import annotations

import hashlib

from django.core.cache import cache as default_cache


class LoginThrottle:
    """Refuse logins from an address or to an account after too many recent failures."""

    cache = default_cache
    limit = 10
    window = 15 * 60

    def _keys(self, ip: str | None, email: str) -> list[str]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        keys = [f"login-fail:acct:{account}"]
        if ip:
            keys.append(f"login-fail:ip:{ip}")
        return keys

    def is_blocked(self, *, ip: str | None, email: str) -> bool:
        """Return whether either counter has reached the limit in this window."""
        counts = self.cache.get_many(self._keys(ip, email))
        return any(int(count) >= self.limit for count in counts.values())

    def record_failure(self, *, ip: str | None, email: str) -> None:
        """Count one failed attempt against the address and the account."""
        for key in self._keys(ip, email):
            self.cache.add(key, 0, self.window)
            try:
                self.cache.incr(key)
            except ValueError:  # expired between add and incr: start again
                self.cache.set(key, 1, self.window)

    def reset_account(self, *, email: str) -> None:
        """Forget the account's failures after its owner logs in."""
        self.cache.delete(self._keys(None, email)[0])
