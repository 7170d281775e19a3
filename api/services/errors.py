"""Domain errors raised by the services; the web edge (``api.errors``) maps each class to an HTTP status.

Each class carries a stable machine-readable ``code`` and a message that never quotes user input.
"""

from __future__ import annotations

import math


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


class Limited(ServiceError):
    """A limit is used up until its window ends; ``retry_after`` is the whole seconds until then (at least 1)."""

    code = "rate_limited"
    message = "too many requests"

    def __init__(self, *, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"{self.message}; retry in {self.retry_after} seconds")


class RateLimited(Limited):
    """Too many verifications from one client (address or API key) in the current minute."""

    code = "rate_limited"
    message = "too many verifications"


class HolderCheckLimited(Limited):
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


class TrustListSequenceConflict(Conflict):
    """An uploaded trust list's sequence number is not above the newest one's."""

    code = "trust_list_sequence"
    message = "the trust list's sequence number must be higher than the published one's"


class IssuerExists(Conflict):
    """An issuer with this code exists already."""

    code = "issuer_exists"


class NoActiveKey(Conflict):
    """The issuer has no active signing key (it was revoked or retired meanwhile)."""

    code = "no_active_key"
    message = "issuer has no active signing key; rotate to create one"


class InvalidPhoto(ServiceError):
    """The photo is not valid base64, not a JPEG or PNG, or cannot be decoded."""

    code = "invalid_photo"
    message = "photo cannot be decoded"


class PhotoTooLarge(ServiceError):
    """The photo has more bytes than ``CERTSEAL_MAX_PHOTO_BYTES``."""

    code = "photo_too_large"
    message = "photo is too large"


class PhotoTooManyPixels(ServiceError):
    """The photo's declared size exceeds the pixel cap (refused before it is decoded)."""

    code = "photo_too_many_pixels"
    message = "photo has too many pixels"


class Busy(ServiceError):
    """A bounded resource (e.g. the photo decoders) stayed busy past its wait; the caller may retry."""

    code = "busy"
    message = "the server is busy; try again shortly"


class StatusIndexesExhausted(Busy):
    """No free status index turned up in many random draws: the issuer's lists are fuller than they should be."""

    code = "status_indexes_exhausted"
    message = "no free status index could be drawn; try again"


class NotFound(ServiceError):
    """The named thing does not exist (or is not the caller's to see)."""

    code = "not_found"
    message = "no such resource"


class IssuerNotFound(NotFound):
    """The issuer does not exist (any more)."""

    code = "issuer_not_found"
    message = "no such issuer"


class CertificateNotFound(NotFound):
    """The certificate does not exist (any more), or belongs to another issuer."""

    code = "certificate_not_found"
    message = "no such certificate"


class KeyNotFound(NotFound):
    """The signing key does not exist for this issuer."""

    code = "key_not_found"
    message = "no such key for this issuer"


class StatusListNotFound(NotFound):
    """The issuer has no status list with this number."""

    code = "status_list_not_found"
    message = "no such status list"


class StatusListUnavailable(NotFound):
    """The issuer has no active status-list key, so its lists cannot be signed now."""

    code = "status_list_unavailable"
    message = "this issuer publishes no status list now"


class TrustListNotFound(NotFound):
    """No trust list has been published yet."""

    code = "trust_list_unavailable"
    message = "no trust list has been published"


class TrustAnchorNotConfigured(NotFound):
    """The service has no trust anchor (CERTSEAL_TRUST_ANCHOR_PUBLIC_KEY_FILE / _KEY_FILE)."""

    code = "trust_anchor_not_configured"
    message = "this service has no trust anchor configured"


class ApiKeyNotFound(NotFound):
    """No API key with this prefix in the scope named (an issuer's keys, or the apps' keys)."""

    code = "api_key_not_found"
    message = "no such API key"


class ApiKeyRevoked(Conflict):
    """The API key is revoked, which is final: its expiry can no longer be changed."""

    code = "api_key_revoked"
    message = "the API key is revoked"


class Forbidden(ServiceError):
    """The caller is known but may not do this."""

    code = "forbidden"
    message = "this is not allowed for the caller"


class OperationNotAllowed(Forbidden):
    """The issuer may not certify this operation."""

    code = "operation_not_allowed"


class Unprocessable(ServiceError):
    """The request is well-formed but asks for something the rules do not allow."""

    code = "unprocessable"
    message = "the request cannot be carried out as given"


class UnknownOperation(Unprocessable):
    """An operation code is malformed or not in the catalogue."""

    code = "unknown_operation"


class InvalidIdNumberError(Unprocessable):
    """The ID number fails its format or check-digit rule."""

    code = "invalid_id_number"


class HolderTooYoung(Unprocessable):
    """The holder is younger than the minimum age."""

    code = "holder_too_young"


class HolderTooOld(Unprocessable):
    """The holder is older than the maximum age."""

    code = "holder_too_old"


class InvalidDates(Unprocessable):
    """The certificate's dates are not in a possible order (e.g. an issue date in the future)."""

    code = "invalid_dates"


class InvalidCertificate(Unprocessable):
    """The certificate's fields are outside what the credential format can carry."""

    code = "invalid_certificate"


class TrustListRejected(Unprocessable):
    """An uploaded trust list does not verify under the pinned anchor (the code names why)."""

    code = "trust_list_rejected"
    message = "the trust list does not verify under this service's trust anchor"


class InvalidIssuerField(Unprocessable):
    """An issuer field that cannot take the value given (e.g. removing the name)."""

    code = "invalid_issuer_field"
    message = "invalid issuer field"


class InvalidKeyUse(Unprocessable):
    """A key use or algorithm that certseal does not have (status-list keys are ES256)."""

    code = "invalid_key_use"
    message = "invalid key use or algorithm"


class InvalidExpiry(Unprocessable):
    """A new API key's expiry is not in the future."""

    code = "invalid_expiry"
    message = "expires_at must be in the future"


class ExamPointNotFound(NotFound):
    """No exam point with this code (or not the caller's to see)."""

    code = "exam_point_not_found"
    message = "no such exam point"


class TrainingInstitutionNotFound(NotFound):
    """No training institution with this code (or not the caller's to see)."""

    code = "training_institution_not_found"
    message = "no such training institution"


class ExamSessionNotFound(NotFound):
    """No exam session with this id (or not the caller's to see)."""

    code = "exam_session_not_found"
    message = "no such exam session"


class ExamResultNotFound(NotFound):
    """No exam result with this id (or not the caller's to see)."""

    code = "exam_result_not_found"
    message = "no such exam result"


class BatchNotFound(NotFound):
    """No certificate batch with this id (or not the caller's to see)."""

    code = "batch_not_found"
    message = "no such certificate batch"


class ExamPointExists(Conflict):
    """An exam point with this code exists already."""

    code = "exam_point_exists"
    message = "an exam point with this code exists"


class TrainingInstitutionExists(Conflict):
    """A training institution with this code exists already."""

    code = "training_institution_exists"
    message = "a training institution with this code exists"


class ExamPointNotActive(Conflict):
    """The exam point is suspended or closed (or outside its accreditation window): no new sessions there."""

    code = "exam_point_not_active"
    message = "the exam point may not hold sessions now"


class UnknownExamResult(Conflict):
    """The exam result named for issuance does not exist, or is another issuer's."""

    code = "exam_result_not_found"
    message = "no such exam result for this issuer"


class ExamResultNotPassed(Conflict):
    """The exam result is a fail: no certificate."""

    code = "exam_not_passed"
    message = "the exam result is not a pass"


class ExamResultExpired(Conflict):
    """The pass is older than its usable period (12 months by default): no certificate from it."""

    code = "exam_result_expired"
    message = "the exam pass is no longer usable for issuance"


class ExamResultCertified(Conflict):
    """A certificate was issued for this exam result already."""

    code = "exam_result_certified"
    message = "a certificate was already issued for this exam result"


class ReapplicationBarred(Conflict):
    """The holder's certificate for this item was revoked less than the bar (3 years) ago."""

    code = "reapplication_barred"
    message = "the holder's certificate for this item was revoked recently; an admin may override with a reason"


class DirectIssuanceRefused(Conflict):
    """Issuance without an exam result is off, or needs a basis the request did not name."""

    code = "direct_issuance_refused"
    message = "certificates are issued from exam results here"


class InvalidIdempotencyKey(Unprocessable):
    """An Idempotency-Key that is blank, longer than 200 characters or not printable ASCII."""

    code = "invalid_idempotency_key"
    message = "an Idempotency-Key is 1 to 200 printable ASCII characters"


class BatchConflict(Conflict):
    """The batch request is not possible as given (e.g. an Idempotency-Key reused with another request)."""

    code = "batch_conflict"
    message = "the batch request conflicts with an earlier one"


class CardFontMissing(ServiceError):
    """No TrueType CJK font for printed cards (CERTSEAL_CARD_FONT_FILE, or Debian's fonts-droid-fallback)."""

    code = "card_font_missing"
    message = "printed cards need a CJK TrueType font; set CERTSEAL_CARD_FONT_FILE"
