"""One exception class per failure class, each with a stable machine-readable ``code``.

The message is deliberately generic (it may reach an untrusted caller); the specific detail
goes to the log via ``detail``, which never contains key material or ID numbers.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("certseal.crypto")


class CertsealError(Exception):
    """Base class of every error this library raises on purpose."""

    code = "error"
    message = "certseal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.message)
        self.detail = detail
        if detail:
            _log.debug("%s: %s", self.code, detail)

    def __str__(self) -> str:
        return self.message


class VerificationError(CertsealError):
    """A credential was not accepted; ``code`` says why."""

    code = "verification_failed"
    message = "credential not accepted"


class Malformed(VerificationError):
    """Input is not a well-formed, canonical credential of the expected shape."""

    code = "malformed"
    message = "credential is malformed"


class UnsupportedFormat(VerificationError):
    """Input is a URL or envelope of a kind or version this verifier does not know."""

    code = "unsupported_format"
    message = "credential format is not supported"


class NoQrCode(VerificationError):
    """An image holds no QR code that could be read: nothing was verified, nothing suggests a forgery."""

    code = "no_qr_code"
    message = "no QR code found in the image"


class UnsupportedAlgorithm(VerificationError):
    """The envelope names a signature algorithm this verifier does not implement."""

    code = "unsupported_algorithm"
    message = "signature algorithm is not supported"


class UnknownKey(VerificationError):
    """No trusted key has the envelope's key id."""

    code = "unknown_key"
    message = "signing key is not trusted"


class BadSignature(VerificationError):
    """The signature does not verify with the trusted key."""

    code = "bad_signature"
    message = "signature is not valid"


class NotYetValid(VerificationError):
    """The credential's validity starts after the verification time."""

    code = "not_yet_valid"
    message = "credential is not yet valid"


class Expired(VerificationError):
    """The credential's validity ended before the verification time."""

    code = "expired"
    message = "credential has expired"


class PolicyError(VerificationError):
    """A verification policy was empty or misconfigured; it fails closed."""

    code = "policy_error"
    message = "verification policy cannot be satisfied"


class KeyUnavailable(CertsealError):
    """A signing key is missing, unreadable, or its passphrase is wrong."""

    code = "key_unavailable"
    message = "signing key is unavailable"


class InvalidInput(CertsealError):
    """Data handed to a signing or encoding function is out of the format's range."""

    code = "invalid_input"
    message = "input is not valid for this format"


class ReviewOverdue(VerificationError):
    """The certificate's periodic review (复审) date has passed."""

    code = "review_overdue"
    message = "certificate review is overdue"


class OperationNotCovered(VerificationError):
    """The certificate does not cover the operation or purpose asked about."""

    code = "operation_not_covered"
    message = "certificate does not cover this operation"


class WrongType(VerificationError):
    """A signed object of another kind (say a certificate where a status list was expected, or the reverse)."""

    code = "wrong_type"
    message = "signed object is not of the expected type"


class StatusListMalformed(Malformed):
    """A status list's compressed byte array (``lst``) or its ``bits`` is not valid."""

    code = "status_list_malformed"
    message = "status list is malformed"


class StatusListTooLarge(StatusListMalformed):
    """A status list decompresses to more than the bound the caller allows (a decompression bomb)."""

    code = "status_list_too_large"
    message = "status list is larger than allowed"


class StatusListSubjectMismatch(VerificationError):
    """A status list token's ``sub`` is not the list URI the certificate points to."""

    code = "status_list_subject_mismatch"
    message = "status list is not the one this certificate refers to"


class StatusListExpired(VerificationError):
    """A status list token is past its ``exp``: no statement about a status can be made from it."""

    code = "status_unknown"
    message = "status list has expired; status unknown"


class StatusIndexOutOfRange(VerificationError):
    """A status index lies beyond the status list: no statement about the status can be made."""

    code = "status_index_out_of_range"
    message = "status index is outside the status list"


class KeyRevoked(VerificationError):
    """The signing key was revoked (compromised): nothing it signed is accepted offline."""

    code = "key_revoked"
    message = "signing key has been revoked"


class IssuerNotAuthorized(VerificationError):
    """The key is not the named issuer's, or the item is outside the issuer's scope."""

    code = "issuer_not_authorized"
    message = "issuer is not authorized for this certificate"


class KeyNotValidAtIssue(VerificationError):
    """The certificate's ``iat`` lies outside its key's signing window (with the clock skew allowed)."""

    code = "key_not_valid_at_issue"
    message = "signing key was not valid when the certificate was issued"


class Suspended(VerificationError):
    """The certificate is suspended (暂扣)."""

    code = "suspended"
    message = "certificate is suspended"


class Revoked(VerificationError):
    """The certificate is revoked (吊销)."""

    code = "revoked"
    message = "certificate is revoked"


class Superseded(VerificationError):
    """The certificate was reissued (under a new key) and this copy is no longer current."""

    code = "superseded"
    message = "certificate has been superseded by a reissue"


class TrustListExpired(VerificationError):
    """A trust list is at or past its ``exp``: the keys and states it lists may be out of date."""

    code = "trust_list_expired"
    message = "trust list has expired"
