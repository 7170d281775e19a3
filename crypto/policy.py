"""Verification policy: small checks composed into a policy, each raising one specific error.

A check judges a :class:`~crypto.envelope.SignedCertificate` (signature already verified) at an
explicit time ``now``; nothing here reads the clock. An empty policy fails instead of passing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import ClassVar, Protocol

from .envelope import CST, Operation, SignedCertificate
from .errors import (
    Expired,
    KeyNotValidAtIssue,
    NotYetValid,
    OperationNotCovered,
    PolicyError,
    ReviewOverdue,
    VerificationError,
)

# Phones and servers drift; five minutes either way is what RFC 8392 deployments commonly allow.
CLOCK_SKEW = timedelta(minutes=5)
HOT_WORK_CATEGORY = 2  # 焊接与热切割作业: hot work needs an item of this category


class Check(Protocol):
    """One verification rule, named for verdicts that list which checks ran."""

    name: ClassVar[str]

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise a :class:`VerificationError` subclass if ``certificate`` fails this rule at ``now``."""


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise PolicyError("verification time must carry a time zone")
    return now


@dataclass(frozen=True)
class ValidityPeriod:
    """``nbf`` <= now < ``exp``, with :data:`CLOCK_SKEW` of tolerance either way."""

    name: ClassVar[str] = "validity"

    skew: timedelta = CLOCK_SKEW

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`NotYetValid` or :class:`Expired` outside the validity window."""
        instant = _aware(now).timestamp()
        skew = self.skew.total_seconds()
        if instant + skew < certificate.claims.not_before:
            raise NotYetValid(f"nbf {certificate.claims.not_before} > now {instant:.0f}")
        if instant - skew >= certificate.claims.expires:
            raise Expired(f"exp {certificate.claims.expires} <= now {instant:.0f}")


@dataclass(frozen=True)
class KeySigningWindow:
    """The certificate's ``iat`` lies in its key's signing window: ``not_before - skew <= iat <= not_after + skew``.

    ``not_after`` None: the key still signs, no upper bound. Normative (credential-format §12): a
    certificate its key could not have signed at that time is :class:`KeyNotValidAtIssue`.
    """

    name: ClassVar[str] = "key_window"

    not_before: datetime
    not_after: datetime | None = None
    skew: timedelta = CLOCK_SKEW

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`KeyNotValidAtIssue` when ``iat`` is outside the window (``now`` is not used)."""
        issued = certificate.claims.issued_at
        skew = self.skew.total_seconds()
        if issued < _aware(self.not_before).timestamp() - skew:
            raise KeyNotValidAtIssue(f"iat {issued} before the key's not_before {self.not_before.isoformat()}")
        if self.not_after is not None and issued > _aware(self.not_after).timestamp() + skew:
            raise KeyNotValidAtIssue(f"iat {issued} after the key's not_after {self.not_after.isoformat()}")


@dataclass(frozen=True)
class ReviewNotOverdue:
    """The review date (复审) has not passed; ``due`` overrides the signed date (the registry's wins)."""

    name: ClassVar[str] = "review"

    due: date | None = None

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`ReviewOverdue` after the end of the review day (CST)."""
        due = self.due or certificate.claims.review_due
        if due is not None and _aware(now).astimezone(CST).date() > due:
            raise ReviewOverdue(f"review was due {due.isoformat()}")


@dataclass(frozen=True)
class CoversOperation:
    """The certificate is for exactly this catalogue item."""

    name: ClassVar[str] = "operation"

    operation: Operation

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`OperationNotCovered` for any other item."""
        if certificate.claims.operation != self.operation:
            raise OperationNotCovered(f"{certificate.claims.operation} is not {self.operation}")


@dataclass(frozen=True)
class CoversHotWork:
    """The certificate is for a welding and hot-cutting item (category 2)."""

    name: ClassVar[str] = "hot_work"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`OperationNotCovered` outside category 2."""
        if certificate.claims.operation.category != HOT_WORK_CATEGORY:
            raise OperationNotCovered(f"{certificate.claims.operation} is not hot work")


class AllOf:
    """Every check must pass; a policy with no checks is refused."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = tuple(checks)

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise the first failing check's error, or :class:`PolicyError` if there are no checks."""
        if not self.checks:
            raise PolicyError("empty policy")
        for check in self.checks:
            check.verify(certificate, now)

    def failures(self, certificate: SignedCertificate, now: datetime) -> list[VerificationError]:
        """Run every check and return all failures, so a verdict can list every reason."""
        if not self.checks:
            return [PolicyError("empty policy")]
        found: list[VerificationError] = []
        for check in self.checks:
            try:
                check.verify(certificate, now)
            except VerificationError as error:
                found.append(error)
        return found
