"""Errors a caller can act on, each with its HTTP status.

Business code raises these; the BentoML service turns them into ``{"error": ...}`` JSON with the
status, and the CLI prints the message. Anything else is a bug: logged server-side, never shown.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class: ``status`` is the HTTP status, ``str(error)`` the message the caller sees."""

    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def payload(self) -> dict[str, str]:
        body = {"error": str(self)}
        if self.field:
            body["field"] = self.field
        return body


class InvalidRequest(ServingError):
    """A payload that is well-formed JSON but asks for something that cannot be (400)."""

    status = 400


class BatchTooLarge(ServingError):
    """More customer ids than ``settings.serving.max_batch`` (413)."""

    status = 413


class UnknownCustomer(ServingError):
    """A single-customer request for an id the feature store does not know (404)."""

    status = 404


class Unauthenticated(ServingError):
    """No API key, or one the settings do not know (401)."""

    status = 401


class Forbidden(ServingError):
    """A known key whose role may not use this endpoint (403)."""

    status = 403


class Unavailable(ServingError):
    """Models or feature store not loaded or unreachable (503); the message says which and why."""

    status = 503
