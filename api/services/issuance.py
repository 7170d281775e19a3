"""Issuer-side operations: issuers, keys, API keys, certificates and their status.

Callers run each function inside one :func:`api.db.write_transaction`. Every check-then-write is one
conditional statement or holds a row lock, so concurrent requests on any number of replicas cannot
both pass a check that only one of them may pass: revoked stays final, an issuer keeps one active key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlmodel import Session, select

import crypto
from crypto import CST, CertificateClaims, Operation
from schemas.api import CertificateCreate
from schemas.catalogue import Catalogue
from schemas.dates import add_years, default_valid_until
from schemas.idnumber import InvalidIdNumber, birth_date, normalize_id_number, years_between

from ..keyring import Keyring
from ..models import Certificate, ExamResult, ExamSession, Issuer, SigningKeyRow, StatusEvent
from ..security import id_number_hmac
from ..settings import Settings
from .errors import (
    CertificateNotFound,
    DirectIssuanceRefused,
    ExamResultCertified,
    ExamResultExpired,
    ExamResultNotPassed,
    HolderTooOld,
    HolderTooYoung,
    InvalidCertificate,
    InvalidDates,
    InvalidIdNumberError,
    InvalidIssuerField,
    InvalidKeyUse,
    InvalidTransition,
    IssuerExists,
    IssuerNotFound,
    KeyNotFound,
    Limited,
    NoActiveKey,
    OperationNotAllowed,
    ReapplicationBarred,
    UnknownExamResult,
    UnknownOperation,
)
from .photos import clean_photo
from .status_lists import StatusLists, draw_status_index

# Allowed status transitions: revoked and superseded are final.
TRANSITIONS = {
    "suspend": ({"valid"}, "suspended"),
    "reinstate": ({"suspended"}, "valid"),
    "revoke": ({"valid", "suspended"}, "revoked"),
    "supersede": ({"valid", "suspended"}, "superseded"),
}
KEY_USES = ("certificate", "status_list")
STATUS_LIST_ALG = "ES256"  # the draft's CWT lists, and every verifier of them, use ES256


def checked_operations(codes: list[str], catalogue: Catalogue) -> list[str]:
    """Normalise operation codes and refuse any the catalogue does not list."""
    result: list[str] = []
    for code in codes:
        try:
            operation = Operation.parse(code)
        except crypto.InvalidInput:
            raise UnknownOperation("operation codes look like 2.1") from None
        if catalogue.get(operation) is None:
            raise UnknownOperation(f"operation {operation} is not in the catalogue")
        if str(operation) not in result:
            result.append(str(operation))
    return result


def create_issuer(
    session: Session,
    keyring: Keyring,
    *,
    code: str,
    name: str,
    region: str,
    operations: list[str],
    alg: str,
    catalogue: Catalogue,
    now: datetime,
) -> tuple[Issuer, SigningKeyRow]:
    """Create an issuer with its first certificate and status-list keys; :class:`IssuerExists` if the code is taken."""
    if session.exec(select(Issuer).where(Issuer.code == code)).first() is not None:
        raise IssuerExists(f"issuer {code} exists")
    issuer = Issuer(code=code, name=name, region=region, operations=checked_operations(operations, catalogue))
    session.add(issuer)
    try:
        session.flush()  # a concurrent create of the same code fails here, on the unique index
    except IntegrityError:
        raise IssuerExists(f"issuer {code} exists") from None
    key = keyring.create(session, issuer, alg, use="certificate", now=now)
    keyring.create(session, issuer, STATUS_LIST_ALG, use="status_list", now=now)
    return issuer, key


def update_issuer(session: Session, *, issuer: Issuer, changes: dict[str, str | None]) -> Issuer:
    """Set the issuer's name, region or service phone (only the keys in ``changes``); name and region stay non-null."""
    for field in ("name", "region"):
        if field in changes and changes[field] is None:
            raise InvalidIssuerField(f"{field} cannot be removed")
    _lock_issuer(session, issuer)
    for field, value in changes.items():
        setattr(issuer, field, value)
    session.add(issuer)
    session.flush()
    return issuer


def active_key(session: Session, issuer: Issuer, *, use: str = "certificate") -> SigningKeyRow:
    """Return the issuer's one active key for ``use``, share-locked until the transaction ends.

    The lock (PostgreSQL; SQLite's write lock covers it) keeps a concurrent revocation or rotation from
    retiring the key between this check and the commit of what it signs.
    """
    row = session.exec(
        select(SigningKeyRow)
        .where(SigningKeyRow.issuer_id == issuer.id, SigningKeyRow.use == use, SigningKeyRow.state == "active")
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise NoActiveKey()
    return row


ROTATION_WINDOW = timedelta(hours=24)
ISSUER_ROTATIONS_PER_DAY = 10
"""How many keys of one use an issuer may make for itself in 24 hours (the admin is not limited)."""


def rotate_key(
    session: Session,
    keyring: Keyring,
    *,
    issuer: Issuer,
    now: datetime,
    use: str = "certificate",
    alg: str | None = None,
    daily_limit: int | None = None,
) -> SigningKeyRow:
    """Retire the active key of ``use`` (it keeps verifying what it signed) and start a new one.

    With ``daily_limit`` (an issuer rotating its own keys), at most that many keys of ``use`` may have
    been made in the last 24 hours, else :class:`Limited`: every key stays in the trust list until its
    ``verify_until``, so a rotation loop would swell the list past the 1 MiB every verifier accepts.

    Rotations and compromises of one issuer run one at a time (the issuer row is locked), each dated no
    earlier than the newest key of ``use`` (the new key's ``not_before`` is the rotation's time), and the
    retirement is a conditional update that only touches a key still active, so it can never turn a
    compromised key back into a retired one; a partial unique index keeps one active key per issuer and use.
    """
    if use not in KEY_USES:
        raise InvalidKeyUse(f"a key is for one of {', '.join(KEY_USES)}")
    if use == "status_list" and alg not in (None, STATUS_LIST_ALG):
        raise InvalidKeyUse(f"status-list keys are {STATUS_LIST_ALG}")
    _lock_issuer(session, issuer)
    # A rotation that waited for the lock behind a newer one must not date the key it retires before that
    # key began (its not_after would precede its not_before, and the trust list could not be signed).
    newest_start = session.exec(
        select(func.max(SigningKeyRow.not_before)).where(SigningKeyRow.issuer_id == issuer.id, SigningKeyRow.use == use)
    ).one()
    if newest_start is not None:
        now = max(now, newest_start)
    if daily_limit is not None:
        recent = session.exec(
            select(SigningKeyRow.not_before)
            .where(
                SigningKeyRow.issuer_id == issuer.id,
                SigningKeyRow.use == use,
                SigningKeyRow.not_before > now - ROTATION_WINDOW,
            )
            .order_by(SigningKeyRow.not_before)  # type: ignore[arg-type]
        ).all()
        if len(recent) >= daily_limit:
            raise Limited(retry_after=(recent[-daily_limit] + ROTATION_WINDOW - now).total_seconds())
    retired_algs = session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.issuer_id == issuer.id, SigningKeyRow.use == use, SigningKeyRow.state == "active")  # type: ignore[arg-type]
        .values(state="retired", retired_at=now, not_after=now)
        .returning(SigningKeyRow.alg)
        .execution_options(synchronize_session=False)
    ).scalars()
    previous_alg = next(iter(retired_algs), None)
    return keyring.create(session, issuer, alg or previous_alg or "ES256", use=use, now=now)


def compromise_key(
    session: Session, *, issuer: Issuer, kid: str, reason: str, compromised_at: datetime | None, now: datetime
) -> SigningKeyRow:
    """Mark a key compromised since ``compromised_at`` (default ``now``; reported again, the earlier time wins).

    Online, certificates registered at or after that moment are refused with ``key_revoked`` and the
    earlier ones are listed for reissue (:func:`certificates_to_reissue`); offline verifiers refuse
    everything the key signed. The issuer row is locked first, as rotation and issuance lock it, so a
    compromise racing a rotation waits its turn instead of deadlocking.
    """
    since = compromised_at or now
    if since > now:
        raise InvalidDates("compromised_at is in the future")
    _lock_issuer(session, issuer)
    key = session.exec(
        select(SigningKeyRow).where(SigningKeyRow.kid == kid, SigningKeyRow.issuer_id == issuer.id)
    ).first()
    if key is None:
        raise KeyNotFound()
    # A compromise "since" before the key existed means everything it signed: say so with its not_before
    # (which also keeps year-1 times out of the database, where converting them to UTC overflows, and
    # out of the trust list, whose times start in 1970).
    since = max(since, key.not_before)
    session.execute(
        update(SigningKeyRow)
        .where(
            SigningKeyRow.kid == kid,  # type: ignore[arg-type]
            SigningKeyRow.issuer_id == issuer.id,  # type: ignore[arg-type]
            (SigningKeyRow.state != "compromised") | (SigningKeyRow.compromised_at > since),  # type: ignore[operator]
        )
        .values(
            state="compromised",
            compromised_at=since,
            compromise_reason=reason,
            not_after=func.coalesce(SigningKeyRow.not_after, now),
        )
    )
    row = session.exec(
        select(SigningKeyRow)
        .where(SigningKeyRow.kid == kid, SigningKeyRow.issuer_id == issuer.id)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise KeyNotFound()
    return row


def certificates_to_reissue(
    session: Session, *, issuer: Issuer, kid: str, after: str | None, limit: int
) -> tuple[SigningKeyRow, list[Certificate]]:
    """Certificates of a compromised key registered before ``compromised_at``: still accepted online, to reissue.

    Revoked and superseded ones are left out (nothing to reissue). Ordered by id, ``after`` continues a page.
    """
    key = session.exec(
        select(SigningKeyRow).where(SigningKeyRow.kid == kid, SigningKeyRow.issuer_id == issuer.id)
    ).first()
    if key is None:
        raise KeyNotFound()
    if key.compromised_at is None:
        return key, []
    query = select(Certificate).where(
        Certificate.kid == kid,
        Certificate.created_at < key.compromised_at,
        Certificate.status.in_(("valid", "suspended")),  # type: ignore[attr-defined]
    )
    if after is not None:
        query = query.where(Certificate.id > after)
    return key, list(session.exec(query.order_by(Certificate.id).limit(limit)).all())  # type: ignore[arg-type]


def barred_holders(
    session: Session, *, operation: str, id_hmacs: Collection[bytes], now: datetime, years: int
) -> set[bytes]:
    """Of these keyed ID hashes, those whose certificate for ``operation`` was revoked less than ``years`` ago.

    A revoked certificate's holder may not re-apply for that item for 3 years (domain rules; the bar is
    ``CERTSEAL_REAPPLICATION_BAR_YEARS``). One query for any number of holders, so a batch checks in bulk.
    """
    if years == 0 or not id_hmacs:
        return set()
    since = now - timedelta(days=365 * years + years // 4)
    barred: set[bytes] = set()
    hashes = list(id_hmacs)
    for start in range(0, len(hashes), 500):  # bounded IN lists: SQLite allows 32,766 parameters
        barred.update(
            session.exec(
                select(Certificate.id_hmac).where(
                    Certificate.operation == operation,
                    Certificate.status == "revoked",
                    Certificate.status_changed_at >= since,  # type: ignore[operator]
                    Certificate.id_hmac.in_(hashes[start : start + 500]),  # type: ignore[attr-defined]
                )
            ).all()
        )
    return barred


def _lock_issuer(session: Session, issuer: Issuer) -> None:
    # Rotation, revocation and issuance all lock the issuer row first: one lock order, no deadlock.
    if session.exec(select(Issuer.id).where(Issuer.id == issuer.id).with_for_update()).first() is None:
        raise IssuerNotFound()


@dataclass(frozen=True)
class Holder:
    """Who a certificate is for, as the registry keeps it: the masked form and keyed hash, never the number."""

    name: str
    masked_id: str
    id_hmac: bytes
    id_hmac_version: int
    birth_date: date | None  # None: the age rule is not checked again (a reissue of what the holder has)


@dataclass(frozen=True)
class Provenance:
    """Why a certificate exists: a passed exam (with its result, session and exam point), or a direct basis."""

    basis: str  # exam | reissue | renewal | legacy_migration | direct
    exam_result_id: str | None = None
    exam_session_id: str | None = None
    exam_point_id: str | None = None
    supersedes_id: str | None = None


def issue_certificate(
    session: Session,
    keyring: Keyring,
    *,
    issuer: Issuer,
    request: CertificateCreate,
    settings: Settings,
    catalogue: Catalogue,
    now: datetime,
    photo: tuple[bytes, str] | None = None,
) -> Certificate:
    """Sign and register a certificate: for a passed exam result, or from holder fields where the policy allows.

    ``photo`` is the request's photo already cleaned by :func:`~api.services.photos.clean_photo`
    (``(bytes, media type)``): the HTTP edge decodes it before opening the transaction, so no
    connection or write lock is held while it waits for a decoder. Without it the photo is cleaned here.
    """
    if request.exam_result_id is not None:
        return _issue_for_exam_result(
            session, keyring, issuer=issuer, request=request, settings=settings, catalogue=catalogue, now=now
        )
    return _issue_direct(
        session, keyring, issuer=issuer, request=request, settings=settings, catalogue=catalogue, now=now, photo=photo
    )


def _issue_direct(
    session: Session,
    keyring: Keyring,
    *,
    issuer: Issuer,
    request: CertificateCreate,
    settings: Settings,
    catalogue: Catalogue,
    now: datetime,
    photo: tuple[bytes, str] | None,
) -> Certificate:
    policy = settings.direct_issuance_in_effect
    if policy == "off":
        raise DirectIssuanceRefused("certificates are issued from exam results here: give exam_result_id")
    if policy == "with_basis" and request.basis is None:
        raise DirectIssuanceRefused(
            "without an exam result, name the basis: reissue, renewal or legacy_migration (or give exam_result_id)"
        )
    name, number, operation = request.holder_name, request.holder_id_number, request.operation
    if name is None or number is None or operation is None:  # the request model already refuses this
        raise InvalidCertificate("holder_name, holder_id_number and operation are required without exam_result_id")
    try:
        id_number = normalize_id_number(number)
    except InvalidIdNumber as exc:
        raise InvalidIdNumberError(str(exc)) from None
    (operation_code,) = checked_operations([operation], catalogue)
    holder = Holder(
        name=name,
        masked_id=crypto.mask_visible(id_number),
        id_hmac=id_number_hmac(id_number, settings.id_hmac_keys[settings.id_hmac_key_version]),
        id_hmac_version=settings.id_hmac_key_version,
        birth_date=birth_date(id_number),
    )
    # A reissue re-signs what the holder already has; every other basis is a new application.
    if request.basis != "reissue":
        every_version = [id_number_hmac(id_number, key) for key in settings.id_hmac_keys.values()]
        _refuse_if_barred(session, operation=operation_code, id_hmacs=every_version, settings=settings, now=now)
    photo_bytes, photo_type = photo if photo is not None else (None, None)
    if photo is None and request.photo_base64:
        photo_bytes, photo_type = clean_photo(request.photo_base64, max_bytes=settings.max_photo_bytes)
    return _register(
        session,
        keyring,
        issuer=issuer,
        holder=holder,
        operation_code=operation_code,
        issue_date=request.issue_date or now.astimezone(CST).date(),
        valid_until=request.valid_until,
        review_due=request.review_due,
        photo=(photo_bytes, photo_type or "image/jpeg") if photo_bytes else None,
        provenance=Provenance(basis=request.basis or "direct"),
        settings=settings,
        now=now,
    )


def _issue_for_exam_result(
    session: Session,
    keyring: Keyring,
    *,
    issuer: Issuer,
    request: CertificateCreate,
    settings: Settings,
    catalogue: Catalogue,
    now: datetime,
) -> Certificate:
    # The issuer row first, as a batch chunk, rotation and revocation lock it: a batch chunk holds it while
    # its certificates' foreign keys share-lock their results, so locking the result first could deadlock.
    _lock_issuer(session, issuer)
    # Then the result (PostgreSQL; SQLite's write lock covers both): two requests for one result queue
    # here, and the unique certificates.exam_result_id stops a batch that certifies it meanwhile.
    result = session.exec(
        select(ExamResult)
        .where(ExamResult.id == request.exam_result_id, ExamResult.issuer_id == issuer.id)
        .with_for_update()
    ).first()
    exam = session.get(ExamSession, result.session_id) if result is not None else None
    if result is None or exam is None:
        raise UnknownExamResult()
    issue_date = request.issue_date or now.astimezone(CST).date()
    if not result.passed:
        raise ExamResultNotPassed()
    if issue_date < exam.exam_date:
        raise InvalidDates("the issue date is before the exam")
    if issue_date > result.usable_until:
        raise ExamResultExpired(f"the pass was usable for issuance until {result.usable_until.isoformat()}")
    (operation_code,) = checked_operations([exam.operation], catalogue)
    if session.exec(select(Certificate.id).where(Certificate.exam_result_id == result.id)).first() is not None:
        raise ExamResultCertified()
    if result.bar_override_reason is None:
        _refuse_if_barred(session, operation=operation_code, id_hmacs=[result.id_hmac], settings=settings, now=now)
    holder = Holder(
        name=result.holder_name,
        masked_id=result.masked_id,
        id_hmac=result.id_hmac,
        id_hmac_version=result.id_hmac_version,
        birth_date=result.birth_date,
    )
    certificate = _register(
        session,
        keyring,
        issuer=issuer,
        holder=holder,
        operation_code=operation_code,
        issue_date=issue_date,
        valid_until=request.valid_until,
        review_due=request.review_due,
        photo=(result.photo, result.photo_type or "image/jpeg") if result.photo else None,
        provenance=Provenance(
            basis="exam", exam_result_id=result.id, exam_session_id=exam.id, exam_point_id=exam.exam_point_id
        ),
        settings=settings,
        now=now,
    )
    try:
        session.flush()  # the unique exam_result_id: a batch that certified this result meanwhile wins
    except IntegrityError:
        raise ExamResultCertified() from None
    return certificate


def _refuse_if_barred(
    session: Session, *, operation: str, id_hmacs: list[bytes], settings: Settings, now: datetime
) -> None:
    if barred_holders(session, operation=operation, id_hmacs=id_hmacs, now=now, years=settings.reapplication_bar_years):
        raise ReapplicationBarred()


def reissue_certificate(
    session: Session,
    keyring: Keyring,
    lists: StatusLists,
    *,
    certificate: Certificate,
    issuer: Issuer,
    reason: str,
    photo: tuple[bytes, str] | None,
    settings: Settings,
    now: datetime,
) -> Certificate:
    """Re-sign a valid certificate under the issuer's current key and supersede the old one, in one transaction.

    For a lost card, a compromised key or a correction: the holder, item and validity stay; the new
    certificate records what it replaces, and verifying the old one answers ``superseded`` naming the new
    serial. Only a valid certificate can be reissued (a suspended one is not cleared by a reissue).
    """
    if certificate.status != "valid":
        raise InvalidTransition(f"cannot reissue a {certificate.status} certificate")
    holder = Holder(
        name=certificate.holder_name,
        masked_id=certificate.masked_id,
        id_hmac=certificate.id_hmac,
        id_hmac_version=certificate.id_hmac_version,
        birth_date=None,
    )
    kept_photo = (certificate.photo, certificate.photo_type or "image/jpeg") if certificate.photo else None
    replacement = _register(
        session,
        keyring,
        issuer=issuer,
        holder=holder,
        operation_code=certificate.operation,
        issue_date=certificate.issue_date,
        valid_until=certificate.valid_until,
        review_due=certificate.review_due,
        photo=photo or kept_photo,
        provenance=Provenance(
            basis="reissue",
            exam_result_id=None,
            exam_session_id=certificate.exam_session_id,
            exam_point_id=certificate.exam_point_id,
            supersedes_id=certificate.id,
        ),
        settings=settings,
        now=now,
    )
    session.flush()
    change_status(
        session,
        lists,
        certificate=certificate,
        action="supersede",
        reason=f"reissued as {replacement.serial}: {reason}"[:500],
        actor=f"issuer:{issuer.code}",
        now=now,
    )
    return replacement


def _register(
    session: Session,
    keyring: Keyring,
    *,
    issuer: Issuer,
    holder: Holder,
    operation_code: str,
    issue_date: date,
    valid_until: date | None,
    review_due: date | None,
    photo: tuple[bytes, str] | None,
    provenance: Provenance,
    settings: Settings,
    now: datetime,
) -> Certificate:
    """Check the rules every certificate obeys, sign it under the issuer's active key and add it to the session."""
    if operation_code not in issuer.operations:
        raise OperationNotAllowed(f"issuer {issuer.code} may not certify {operation_code}")
    if holder.birth_date is not None:
        age = years_between(holder.birth_date, issue_date)
        if age < settings.minimum_age:
            raise HolderTooYoung(f"applicants must be at least {settings.minimum_age}")
        if age > settings.maximum_age:
            raise HolderTooOld(f"applicants must be at most {settings.maximum_age}")
    today = now.astimezone(CST).date()
    if issue_date > today + timedelta(days=1):
        raise InvalidDates("issue date is in the future")
    valid_until = valid_until or default_valid_until(issue_date, settings.validity_years)
    if valid_until < issue_date:
        raise InvalidDates("valid_until is before the issue date")
    if review_due is None and settings.review_required:
        review_due = add_years(issue_date, settings.review_interval_years)
    photo_bytes, photo_type = photo if photo is not None else (None, None)
    status_index = draw_status_index(session, issuer)  # locks the issuer row first, as rotation does
    key_row = active_key(session, issuer)
    try:
        claims = CertificateClaims.issue(
            issuer=issuer.code,
            holder_name=holder.name,
            masked_id=holder.masked_id,
            operation=Operation.parse(operation_code),
            valid_from=issue_date,
            valid_until=valid_until,
            review_due=review_due,
            photo_digest=crypto.photo_digest(photo_bytes) if photo_bytes else None,
            status_index=status_index,
            issued_at=now,
        )
    except crypto.InvalidInput as exc:
        raise InvalidCertificate(f"certificate fields are out of range ({exc.detail})") from None
    envelope = crypto.sign_certificate(claims, keyring.signing_key(key_row))
    certificate = Certificate(
        serial=claims.serial.hex(),
        issuer_id=issuer.id,
        kid=key_row.kid,
        holder_name=claims.holder_name,
        masked_id=claims.masked_id,
        id_hmac=holder.id_hmac,
        id_hmac_version=holder.id_hmac_version,
        operation=operation_code,
        issue_date=issue_date,
        valid_until=valid_until,
        review_due=review_due,
        photo=photo_bytes,
        photo_type=photo_type,
        photo_digest=claims.photo_digest.hex() if claims.photo_digest else None,
        status_index=claims.status_index or 0,
        envelope=envelope,
        envelope_sha256=hashlib.sha256(envelope).hexdigest(),
        created_at=now,  # a compromised key's certificates are judged by when they were registered
        basis=provenance.basis,
        exam_result_id=provenance.exam_result_id,
        exam_session_id=provenance.exam_session_id,
        exam_point_id=provenance.exam_point_id,
        supersedes_id=provenance.supersedes_id,
    )
    session.add(certificate)
    session.add(StatusEvent(certificate_id=certificate.id, action="issued", actor=f"issuer:{issuer.code}", at=now))
    return certificate


def _reload(session: Session, certificate: Certificate) -> None:
    try:
        session.refresh(certificate)
    except InvalidRequestError:  # the row was deleted meanwhile (e.g. demo data purged)
        raise CertificateNotFound() from None


def change_status(
    session: Session,
    lists: StatusLists,
    *,
    certificate: Certificate,
    action: str,
    reason: str,
    actor: str,
    now: datetime,
) -> Certificate:
    """Suspend, reinstate, revoke or supersede in one conditional update, and re-sign the status list.

    The update names the statuses the action may start from, so of two racing changes only one can
    match: revoked stays final under any interleaving. :class:`InvalidTransition` if the status forbids
    the action. The certificate's status list is rebuilt in the same transaction.
    """
    allowed_from, target = TRANSITIONS[action]
    changed = session.execute(
        update(Certificate)
        .where(Certificate.id == certificate.id, Certificate.status.in_(allowed_from))  # type: ignore[arg-type,attr-defined]
        .values(status=target, status_reason=reason, status_changed_at=now)
        .execution_options(synchronize_session=False)
    )
    _reload(session, certificate)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidTransition(f"cannot {action} a {certificate.status} certificate")
    session.add(StatusEvent(certificate_id=certificate.id, action=action, reason=reason, actor=actor, at=now))
    lists.record_change(session, issuer_id=certificate.issuer_id, status_index=certificate.status_index, now=now)
    return certificate


def record_review(
    session: Session, *, certificate: Certificate, next_due: date, note: str | None, actor: str, now: datetime
) -> Certificate:
    """Record a passed review: the registry's review date now wins over the signed one online."""
    if next_due <= now.astimezone(CST).date():
        raise InvalidDates("the next review date must be in the future")
    changed = session.execute(
        update(Certificate)
        .where(Certificate.id == certificate.id, Certificate.status != "revoked")  # type: ignore[arg-type]
        .values(review_due=next_due)
        .execution_options(synchronize_session=False)
    )
    _reload(session, certificate)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidTransition("a revoked certificate cannot be reviewed")
    session.add(StatusEvent(certificate_id=certificate.id, action="reviewed", reason=note, actor=actor))
    return certificate


def qr_text_of(certificate: Certificate, settings: Settings) -> str:
    """The QR text of a stored certificate under this deployment's public base URL."""
    return crypto.encode_qr_text(
        certificate.envelope, settings.public_base_url, allow_insecure_localhost=settings.allow_insecure_localhost
    )
