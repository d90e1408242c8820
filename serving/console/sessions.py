"""Who is looking: the console's login, session cookie and page permissions.

A user logs in once with the API key their role was given (the same keys as the HTTP API,
``serving.api_keys``) and gets a session cookie; pages then never see the key again. The cookie
is ``HttpOnly`` (no script can read it), ``SameSite=Strict`` (no other site's page can make the
browser send it, so a forged form post arrives anonymous) and ``Secure`` over HTTPS. It holds no
key and no role, only an HMAC digest of the key and an expiry, signed with a secret derived from
the configured keys; so

* every server worker process verifies it alike, with no shared session table;
* the role is looked up in the configuration at every request: a key removed from the settings
  ends its sessions at the next restart, and changing any key invalidates every session;
* a stolen cookie expires after ``console.session_hours``.

Scripts and benchmarks may send ``X-API-Key`` instead of the cookie, as on the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from serving.access import ROLE_PAGES, check_roles, key_from_headers, role_for_key
from serving.errors import Forbidden, Unauthenticated

COOKIE = "crmscore_console"


@dataclass(frozen=True)
class Identity:
    """A logged-in user: their role, and for a customer manager the manager id they are."""

    role: str
    manager_id: int | None = None

    @property
    def pages(self) -> frozenset[str]:
        return ROLE_PAGES.get(self.role, frozenset())

    def may_open(self, page: str) -> bool:
        return page in self.pages

    def require(self, page: str) -> None:
        """Raise :class:`Forbidden` (403) unless the role may open ``page``."""
        if not self.may_open(page):
            allowed = sorted(r for r, pages in ROLE_PAGES.items() if page in pages)
            raise Forbidden(f"role {self.role!r} may not open {page} (allowed roles: {allowed})")

    def may_see_manager(self, manager_id: int | None) -> bool:
        """A manager sees only their own customers; other roles with the page see everyone's."""
        return self.role != "manager" or (manager_id is not None and manager_id == self.manager_id)


class Sessions:
    """Issues and verifies session cookies for the configured keys."""

    def __init__(
        self, api_keys: Mapping[str, str], manager_ids: Mapping[str, int], hours: float
    ) -> None:
        check_roles(api_keys, manager_ids)
        self.api_keys = dict(api_keys)
        self.seconds = int(hours * 3600)
        material = json.dumps(sorted(api_keys.items()), separators=(",", ":")).encode()
        self._secret = hashlib.sha256(b"crmscore-console-session\0" + material).digest()
        self._identities = {
            self._digest(key): Identity(role, manager_ids.get(key))
            for key, role in api_keys.items()
        }

    def _digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:32]

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def login(self, key: str | None) -> tuple[Identity, str]:
        """``(identity, cookie value)`` for a valid key; :class:`Unauthenticated` otherwise."""
        key = (key or "").strip()
        role_for_key(key, self.api_keys)  # constant-time comparison against every key
        digest = self._digest(key)
        payload = json.dumps({"k": digest, "exp": int(time.time()) + self.seconds}).encode()
        token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return self._identities[digest], f"{token}.{self._sign(payload)}"

    def identify(self, cookie: str | None, headers: Mapping[str, str]) -> Identity:
        """The caller's identity from the session cookie or an ``X-API-Key`` header."""
        if not cookie:
            key = key_from_headers(headers)
            if key is None:
                raise Unauthenticated("not logged in")
            return self.login(key)[0]
        token, _, signature = cookie.partition(".")
        try:
            payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            valid = hmac.compare_digest(signature, self._sign(payload))
            claims = json.loads(payload) if valid else {}
        except (ValueError, TypeError):
            claims = {}
        identity = self._identities.get(claims.get("k", ""))
        if identity is None:
            raise Unauthenticated("your session is not valid any more: log in again")
        if claims.get("exp", 0) < time.time():
            raise Unauthenticated("your session has expired: log in again")
        return identity
