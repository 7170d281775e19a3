"""Domain errors raised by the services; the web edge (``api.errors``) maps each class to an HTTP status.

Each class carries a stable machine-readable ``code`` and a message that never quotes user input.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a failure the caller can act on, with a stable code."""

    code = "error"
    message = "the request could not be completed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class RegistryUnavailable(ServiceError):
    """The database did not answer within its bound; verification never falls back to accept."""

    code = "registry_unavailable"
    message = "the registry cannot be read; try again"


class HolderCheckLimited(ServiceError):
    """Too many wrong holder ID numbers for this certificate: from this client, or from all clients."""

    code = "holder_check_limited"
    message = "too many wrong ID numbers for this certificate; holder checks are paused for this client"


class Conflict(ServiceError):
    """The request conflicts with the current state (a lost race, an existing name)."""

    code = "conflict"
    message = "the request conflicts with the current state"


class InvalidTransition(Conflict):
    """The certificate's status does not allow this change (revoked is final)."""

    code = "invalid_transition"


class IssuerExists(Conflict):
    """An issuer with this code exists already."""

    code = "issuer_exists"


class NoActiveKey(Conflict):
    """The issuer has no active signing key (it was revoked or retired meanwhile)."""

    code = "no_active_key"
    message = "issuer has no active signing key; rotate to create one"
