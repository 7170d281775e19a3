"""certseal's safe cryptographic surface: sign certificates, encode them as QR, verify them offline.

Everything outside this package imports from here. The low-level parts (``_cbor``,
``_algorithms``, ``cose``) are for this package and the conformance tests.

>>> key = SigningKey.generate("ES256")
>>> claims = CertificateClaims.issue(issuer="CN-44", holder_name="张三", masked_id="4401123X",
...     operation=Operation(2, 1), valid_from=date(2026, 1, 5), valid_until=date(2032, 1, 4))
>>> qr = encode_qr_text(sign_certificate(claims, key), "https://cert.example.gov.cn")
>>> trust = TrustStore(); _ = trust.add(key.public_key)
>>> verify_qr_text(qr, trust, now=datetime(2027, 1, 1, tzinfo=CST)).claims.holder_name
'张三'

Fully offline with a signed trust list and the certificate's status list (``verify_offline``):

>>> anchor, lists_key, t0 = SigningKey.generate("ES256"), SigningKey.generate("ES256"), datetime(2026, 1, 1, tzinfo=CST)
>>> keys = tuple(TrustListKey(k.kid, use, k.public_key, t0, None, None, KeyState.ACTIVE)
...              for k, use in ((key, KeyUse.CERTIFICATE), (lists_key, KeyUse.STATUS_LIST)))
>>> base = "https://cert.example.gov.cn/v1/status-lists/CN-44"
>>> content = TrustListContent((TrustListIssuer("CN-44", "广东省应急管理厅", "广东", ("2.1",), base, keys),))
>>> now = datetime(2027, 1, 1, tzinfo=CST)
>>> trust_list = verify_trust_list(sign_trust_list(content, anchor, sequence=1, iat=now, exp=now.replace(month=2)),
...                                anchor.public_key, now=now)
>>> claims = CertificateClaims.issue(issuer="CN-44", holder_name="张三", masked_id="4401123X",
...     operation=Operation(2, 1), valid_from=date(2026, 1, 5), valid_until=date(2032, 1, 4),
...     status_index=5, issued_at=t0)
>>> qr = encode_qr_text(sign_certificate(claims, key), "https://cert.example.gov.cn")
>>> revoked = StatusList.new(); revoked.set(5, Status.REVOKED)
>>> verify_offline(qr, trust_list, [sign_status_list(revoked, lists_key, uri=base + "/0", iat=now)], now=now).reasons
('revoked',)
"""

from __future__ import annotations

from datetime import date, datetime

from .envelope import (
    CST,
    CertificateClaims,
    Operation,
    SignedCertificate,
    display_masked,
    holder_name_problem,
    mask_visible,
    photo_digest,
    sign_certificate,
    verify_signature,
)
from .errors import (
    BadSignature,
    CertsealError,
    Expired,
    InvalidInput,
    IssuerNotAuthorized,
    KeyNotValidAtIssue,
    KeyRevoked,
    KeyUnavailable,
    Malformed,
    NoQrCode,
    NotYetValid,
    OperationNotCovered,
    PolicyError,
    ReviewOverdue,
    Revoked,
    StatusIndexOutOfRange,
    StatusListExpired,
    StatusListMalformed,
    StatusListSubjectMismatch,
    StatusListTooLarge,
    Superseded,
    Suspended,
    TrustListExpired,
    UnknownKey,
    UnsupportedAlgorithm,
    UnsupportedFormat,
    VerificationError,
    WrongType,
)
from .keys import SigningKey, TrustedKey, TrustStore, key_id, load_public_key, public_key_pem
from .offline import OfflineVerdict, StatusListStore, verify_offline
from .policy import (
    CLOCK_SKEW,
    AllOf,
    Check,
    CoversHotWork,
    CoversOperation,
    KeySigningWindow,
    ReviewNotOverdue,
    ValidityPeriod,
)
from .qrimage import QrSymbol, make_symbol, read_qr_texts, render_png, render_svg
from .qrtext import VERSION_PATH, envelope_from_qr_text, normalize_base_url, to_qr_text
from .statuslist import (
    LIST_SIZE,
    STATUS_BITS,
    TYP_STATUS_LIST,
    Status,
    StatusList,
    StatusListToken,
    list_index,
    list_number,
    sign_status_list,
    status_list_uri,
    verify_status_list_token,
)
from .trustlist import (
    TYP_TRUST_LIST,
    KeyState,
    KeyUse,
    TrustList,
    TrustListContent,
    TrustListIssuer,
    TrustListKey,
    sign_trust_list,
    verify_trust_list,
)

__all__ = [
    "CLOCK_SKEW",
    "CST",
    "LIST_SIZE",
    "STATUS_BITS",
    "TYP_STATUS_LIST",
    "TYP_TRUST_LIST",
    "VERSION_PATH",
    "AllOf",
    "BadSignature",
    "CertificateClaims",
    "CertsealError",
    "Check",
    "CoversHotWork",
    "CoversOperation",
    "Expired",
    "InvalidInput",
    "IssuerNotAuthorized",
    "KeyNotValidAtIssue",
    "KeyRevoked",
    "KeySigningWindow",
    "KeyState",
    "KeyUnavailable",
    "KeyUse",
    "Malformed",
    "NoQrCode",
    "NotYetValid",
    "OfflineVerdict",
    "Operation",
    "OperationNotCovered",
    "PolicyError",
    "QrSymbol",
    "ReviewNotOverdue",
    "ReviewOverdue",
    "Revoked",
    "SignedCertificate",
    "SigningKey",
    "Status",
    "StatusIndexOutOfRange",
    "StatusList",
    "StatusListExpired",
    "StatusListMalformed",
    "StatusListStore",
    "StatusListSubjectMismatch",
    "StatusListToken",
    "StatusListTooLarge",
    "Superseded",
    "Suspended",
    "TrustList",
    "TrustListContent",
    "TrustListExpired",
    "TrustListIssuer",
    "TrustListKey",
    "TrustStore",
    "TrustedKey",
    "UnknownKey",
    "UnsupportedAlgorithm",
    "UnsupportedFormat",
    "ValidityPeriod",
    "VerificationError",
    "WrongType",
    "date",
    "display_masked",
    "encode_qr_text",
    "envelope_from_qr_text",
    "holder_name_problem",
    "key_id",
    "list_index",
    "list_number",
    "load_public_key",
    "make_symbol",
    "mask_visible",
    "normalize_base_url",
    "photo_digest",
    "public_key_pem",
    "read_qr_texts",
    "render_png",
    "render_svg",
    "sign_certificate",
    "sign_status_list",
    "sign_trust_list",
    "status_list_uri",
    "verify_offline",
    "verify_qr_text",
    "verify_signature",
    "verify_status_list_token",
    "verify_trust_list",
]

DEFAULT_POLICY = AllOf([ValidityPeriod()])


def encode_qr_text(envelope: bytes, base_url: str, *, allow_insecure_localhost: bool = False) -> str:
    """Return the QR text (an https URL) that carries ``envelope``."""
    return to_qr_text(envelope, normalize_base_url(base_url, allow_insecure_localhost=allow_insecure_localhost))


def verify_qr_text(text: str, trust: TrustStore, *, now: datetime, policy: AllOf = DEFAULT_POLICY) -> SignedCertificate:
    """Verify QR text (URL or bare digits) fully offline and return the certificate.

    Raises the :class:`VerificationError` subclass of the first failure: format, signature, then
    ``policy`` (by default the validity period at ``now``, with :data:`CLOCK_SKEW`).
    """
    certificate = verify_signature(envelope_from_qr_text(text), trust)
    policy.verify(certificate, now)
    return certificate
