"""Who may call what: API keys -> roles -> endpoints, and the audit trail of who saw whom.

Keys live only in settings (``CRMSCORE_SERVING__API_KEYS``); each maps to a role. A role sees what
it needs and no more (DOMAIN.md: role-based access, an audit trail of who saw which customer's
scores). Keys are compared in constant time; customer ids in the audit log are pseudonymised with
an HMAC so the log itself does not leak who was looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from serving.errors import Forbidden, Unauthenticated

#: Endpoints each role may call. ``admin`` also reloads the models. A ``manager`` key calls no
#: endpoint: the console shows it its own customers only, which the API cannot tell apart.
ROLE_ENDPOINTS: Mapping[str, frozenset[str]] = {
    "marketing": frozenset({"score", "targets"}),
    "risk": frozenset({"score", "explain"}),
    "service": frozenset({"score", "score_features"}),
    "manager": frozenset(),
    "admin": frozenset({"score", "targets", "explain", "score_features", "reload"}),
}
#: Console pages (``/console/<page>``) each role may open.
ROLE_PAGES: Mapping[str, frozenset[str]] = {
    "marketing": frozenset({"campaigns", "portfolio"}),
    "risk": frozenset({"customers", "models", "portfolio"}),
    "service": frozenset(),
    "manager": frozenset({"worklist", "customers"}),
    "admin": frozenset({"campaigns", "worklist", "customers", "models", "portfolio"}),
}
#: Header carrying the key; ``Authorization: Bearer <key>`` works too.
API_KEY_HEADER = "x-api-key"

audit_logger = logging.getLogger("crmscore.audit")


def enable_audit_log() -> None:
    """Send audit lines to stderr at INFO, whatever the host application's logging says."""
    if not audit_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s AUDIT %(message)s"))
        audit_logger.addHandler(handler)
        audit_logger.setLevel(logging.INFO)
        audit_logger.propagate = False


def check_roles(api_keys: Mapping[str, str], manager_ids: Mapping[str, int] | None = None) -> None:
    """Refuse configurations naming a role that does not exist (a typo would lock a team out), and,
    given ``manager_ids``, a manager key without a manager id or an id for any other key."""
    unknown = sorted({role for role in api_keys.values() if role not in ROLE_ENDPOINTS})
    if unknown:
        raise ValueError(
            f"settings serving.api_keys name unknown role(s) {unknown}; "
            f"expected one of {sorted(ROLE_ENDPOINTS)}"
        )
    if manager_ids is None:
        return
    managers = {key for key, role in api_keys.items() if role == "manager"}
    if managers - set(manager_ids):
        raise ValueError(
            f"settings serving.manager_ids lacks {len(managers - set(manager_ids))} key(s) of "
            "role 'manager': each manager key needs the id of the manager it belongs to"
        )
    if set(manager_ids) - managers:
        raise ValueError(
            f"settings serving.manager_ids names {len(set(manager_ids) - managers)} key(s) whose "
            "role is not 'manager' in serving.api_keys"
        )


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key in ``X-API-Key`` or ``Authorization: Bearer``; None when absent."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key.strip()
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def role_for_key(key: str | None, api_keys: Mapping[str, str]) -> str:
    """The role of ``key``. Every configured key is compared (constant time, no early exit), so
    response timing does not reveal how much of a guessed key was right."""
    if not key:
        raise Unauthenticated(f"missing API key: send it in the {API_KEY_HEADER!r} header")
    found = None
    given = key.encode()
    for candidate, role in api_keys.items():
        if hmac.compare_digest(given, candidate.encode()):
            found = role
    if found is None:
        raise Unauthenticated("unknown API key")
    return found


def authorize(headers: Mapping[str, str], endpoint: str, api_keys: Mapping[str, str]) -> str:
    """The caller's role if it may call ``endpoint``; raises 401/403 errors otherwise."""
    role = role_for_key(key_from_headers(headers), api_keys)
    if endpoint not in ROLE_ENDPOINTS.get(role, frozenset()):
        allowed = sorted(r for r, endpoints in ROLE_ENDPOINTS.items() if endpoint in endpoints)
        raise Forbidden(f"role {role!r} may not call /{endpoint} (allowed roles: {allowed})")
    return role


@dataclass(frozen=True)
class Pseudonymiser:
    """Stable pseudonyms for customer ids: HMAC-SHA256 under a secret key, first 16 hex digits."""

    key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> Pseudonymiser:
        """``secret`` from settings; empty means a random key (pseudonyms valid for one process)."""
        if not secret:
            logging.getLogger(__name__).warning(
                "serving.audit_key is not set: audit pseudonyms change at every restart"
            )
            return cls(secrets.token_bytes(32))
        return cls(secret.encode())

    def __call__(self, customer_id: int) -> str:
        return hmac.new(self.key, str(int(customer_id)).encode(), hashlib.sha256).hexdigest()[:16]


def audit(
    pseudonymise: Pseudonymiser,
    *,
    role: str,
    endpoint: str,
    status: int,
    customer_ids: Iterable[int] = (),
    **details: object,
) -> dict:
    """Write one JSON audit line (role, endpoint, status, pseudonymised ids); returns the record."""
    record = {
        "role": role,
        "endpoint": endpoint,
        "status": status,
        "customers": [pseudonymise(i) for i in customer_ids],
        **details,
    }
    audit_logger.info(json.dumps(record, default=str))
    return record
