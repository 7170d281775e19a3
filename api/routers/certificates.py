"""Certificates: issue (idempotent), list, read, QR images, photo, status changes and reviews."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

import crypto
from schemas.api import (
    MAX_OFFSET,
    CertificateCreate,
    CertificateOut,
    CertificatePage,
    CertificateReissue,
    CertificateSearch,
    CertificateStatus,
    ErrorResponse,
    OperationOut,
    ReviewRecord,
    StatusChange,
)
from schemas.catalogue import Catalogue
from schemas.dates import add_years
from schemas.idnumber import InvalidIdNumber, normalize_id_number

from ..clock import china_today
from ..db import read_transaction, write_transaction
from ..deps import (
    CatalogueDep,
    ClockDep,
    CredentialsDep,
    IdempotencyKeyDep,
    IssuerDep,
    KeyringDep,
    OwnedCertificateDep,
    SessionDep,
    SettingsDep,
    StatusListsDep,
    find_certificate,
    get_principal,
)
from ..errors import DATABASE_UNAVAILABLE_RESPONSE, ApiError
from ..metrics import CERTIFICATES_ISSUED, STATUS_CHANGES
from ..models import Certificate, IdempotencyRecord, Issuer
from ..security import id_number_hmac, url_signature_valid
from ..services import issuance
from ..services.photos import clean_photo
from ..services.qrcache import QR_SCALES, qr_images
from ..settings import Settings

router = APIRouter(
    prefix="/v1/certificates",
    tags=["certificates"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)

QR_CACHE = "public, max-age=31536000, immutable"  # an id's credential never changes


def certificate_out(
    certificate: Certificate, issuer: Issuer, settings: Settings, catalogue: Catalogue
) -> CertificateOut:
    """Describe a certificate for its issuer."""
    operation = crypto.Operation.parse(certificate.operation)
    base = f"/v1/certificates/{certificate.id}"
    return CertificateOut(
        id=certificate.id,
        serial=certificate.serial,
        issuer=issuer.code,
        kid=certificate.kid,
        status=certificate.status,  # type: ignore[arg-type]
        status_reason=certificate.status_reason,
        status_changed_at=certificate.status_changed_at,
        holder_name=certificate.holder_name,
        masked_id=crypto.display_masked(certificate.masked_id),
        operation=OperationOut.model_validate(catalogue.describe(operation)),
        issue_date=certificate.issue_date,
        valid_until=certificate.valid_until,
        review_due=certificate.review_due,
        has_photo=certificate.photo is not None,
        status_index=certificate.status_index,
        qr_text=issuance.qr_text_of(certificate, settings),
        links={
            "self": base,
            "qr_png": f"{base}/qr.png",
            "qr_svg": f"{base}/qr.svg",
            "photo": f"{base}/photo",
            "card_pdf": f"{base}/card.pdf",
        },
        created_at=certificate.created_at,
        basis=certificate.basis,
        exam_result_id=certificate.exam_result_id,
        exam_session_id=certificate.exam_session_id,
        supersedes_id=certificate.supersedes_id,
        batch_id=certificate.batch_id,
    )


def _replay(record: IdempotencyRecord, request_hash: str) -> JSONResponse:
    if record.request_hash != request_hash:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used with a different request")
    return JSONResponse(
        json.loads(record.response_body), status_code=record.status_code, headers={"Idempotent-Replay": "true"}
    )


def _stored_record(session: Session, principal: str, key: str) -> IdempotencyRecord | None:
    with read_transaction(session):
        return session.exec(
            select(IdempotencyRecord).where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
        ).first()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificateOut,
    summary="Sign and register a certificate (issuer API key; Idempotency-Key makes retries safe)",
    responses={409: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def issue_certificate(
    body: CertificateCreate,
    issuer: IssuerDep,
    session: SessionDep,
    keyring: KeyringDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    clock: ClockDep,
    idempotency_key: IdempotencyKeyDep,
) -> Response:
    """For a passed exam result (`exam_result_id`), or from holder fields where `CERTSEAL_DIRECT_ISSUANCE` allows.

    A failed, unknown, expired or already certified exam result is refused with 409 and a code; so is a
    holder whose certificate for the item was revoked within the bar (`reapplication_barred`).
    """
    # Decoded before the transaction: waiting for a decoder must not hold a connection or a write lock.
    photo = clean_photo(body.photo_base64, max_bytes=settings.max_photo_bytes) if body.photo_base64 else None

    def issue() -> Certificate:
        return issuance.issue_certificate(
            session,
            keyring,
            issuer=issuer,
            request=body,
            settings=settings,
            catalogue=catalogue,
            now=clock.now(),
            photo=photo,
        )

    return _register_once(
        session, issuer=issuer, settings=settings, catalogue=catalogue, body=body, key=idempotency_key, register=issue
    )


@router.post(
    "/{certificate_id}/reissue",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificateOut,
    summary="Reissue a valid certificate under the current key; the old one becomes superseded",
    responses={409: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def reissue_certificate(
    body: CertificateReissue,
    certificate: OwnedCertificateDep,
    issuer: IssuerDep,
    session: SessionDep,
    keyring: KeyringDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    lists: StatusListsDep,
    clock: ClockDep,
    idempotency_key: IdempotencyKeyDep,
) -> Response:
    """For a lost card, a compromised key or a correction: same holder, item and dates, a new serial and signature.

    In one transaction the new certificate is registered (recording what it supersedes) and the old one is
    marked superseded, so verifying the old QR answers `superseded` and names the new serial.
    """
    photo = clean_photo(body.photo_base64, max_bytes=settings.max_photo_bytes) if body.photo_base64 else None

    def reissue() -> Certificate:
        return issuance.reissue_certificate(
            session,
            keyring,
            lists,
            certificate=certificate,
            issuer=issuer,
            reason=body.reason,
            photo=photo,
            settings=settings,
            now=clock.now(),
        )

    return _register_once(
        session,
        issuer=issuer,
        settings=settings,
        catalogue=catalogue,
        body=body,
        key=idempotency_key,
        register=reissue,
        scope=f"reissue:{certificate.id}|",
    )


def _register_once(
    session: Session,
    *,
    issuer: Issuer,
    settings: Settings,
    catalogue: Catalogue,
    body: CertificateCreate | CertificateReissue,
    key: str | None,
    register: Callable[[], Certificate],
    scope: str = "",
) -> Response:
    """Run ``register`` in one write transaction and answer 201; with an Idempotency-Key a retry gets that answer."""
    principal = f"issuer:{issuer.id}"
    # Only with a key (a body with a photo is megabytes: no copy of it is made for nothing).
    request_hash = hashlib.sha256((scope + body.model_dump_json()).encode()).hexdigest() if key else ""
    if key and (record := _stored_record(session, principal, key)):
        return _replay(record, request_hash)
    try:
        with write_transaction(session):
            record = None
            if key:
                # The key is claimed before anything is issued: a concurrent retry with it fails on the unique
                # (principal, key) once this transaction commits (it waits for it) and replays this answer,
                # instead of issuing again or being refused because this request's certificate now exists.
                record = IdempotencyRecord(
                    principal=principal, key=key, request_hash=request_hash, status_code=201, response_body=b""
                )
                session.add(record)
                session.flush()
            certificate = register()
            payload = certificate_out(certificate, issuer, settings, catalogue).model_dump(mode="json")
            if record is not None:
                record.response_body = json.dumps(payload).encode()  # flushed with the commit
    except IntegrityError:
        # A concurrent retry with the same key committed first: answer as it did.
        record = _stored_record(session, principal, key) if key else None
        if record is None:
            raise
        return _replay(record, request_hash)
    CERTIFICATES_ISSUED.labels(issuer.code).inc()
    return JSONResponse(payload, status_code=201, headers={"Location": payload["links"]["self"]})


def _certificate_page(
    session: Session,
    *,
    issuer: Issuer,
    settings: Settings,
    catalogue: Catalogue,
    status_filter: str | None,
    operation: str | None,
    holder_id_number: str | None,
    limit: int,
    offset: int,
) -> CertificatePage:
    """One page of the issuer's certificates, newest first; the ID number is compared by keyed hash only."""
    query = select(Certificate).where(Certificate.issuer_id == issuer.id)
    if status_filter:
        query = query.where(Certificate.status == status_filter)
    if operation:
        query = query.where(Certificate.operation == operation)
    if holder_id_number is not None:
        try:
            number = normalize_id_number(holder_id_number)
        except InvalidIdNumber as exc:
            raise ApiError(422, "invalid_id_number", str(exc)) from None
        # Every configured key version: rows written before a key rotation still match.
        hashes = [id_number_hmac(number, key) for key in settings.id_hmac_keys.values()]
        query = query.where(Certificate.id_hmac.in_(hashes))  # type: ignore[attr-defined]
    with read_transaction(session):
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        ordered = query.order_by(Certificate.created_at.desc(), Certificate.id)  # type: ignore[attr-defined]
        rows = session.exec(ordered.offset(offset).limit(limit)).all()
    return CertificatePage(
        items=[certificate_out(row, issuer, settings, catalogue) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "",
    response_model=CertificatePage,
    summary="List the calling issuer's certificates",
    responses={400: {"model": ErrorResponse, "description": "`use_search`: a holder ID number in the URL"}},
)
def list_certificates(
    request: Request,
    issuer: IssuerDep,
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    status_filter: Annotated[CertificateStatus | None, Query(alias="status")] = None,
    operation: Annotated[str | None, Query(pattern=r"^[1-9][0-9]?\.[1-9][0-9]?$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CertificatePage:
    """Filter by status or operation item; newest first. To find a holder, use `POST /v1/certificates/search`.

    A `holder_id_number` query parameter is refused with 400 `use_search` rather than ignored: an ID
    number in a URL ends up in access and proxy logs.
    """
    unknown = [name for name in request.query_params if name not in _LIST_PARAMETERS]
    if any(_looks_like_holder_filter(name) for name in unknown):
        raise ApiError(400, "use_search", "ID numbers are not accepted in URLs; POST them to /v1/certificates/search")
    if unknown:  # a misspelt filter silently ignored would return the wrong list
        raise ApiError(400, "unknown_parameter", f"{len(unknown)} unknown query parameter(s); see the API schema")
    return _certificate_page(
        session,
        issuer=issuer,
        settings=settings,
        catalogue=catalogue,
        status_filter=status_filter,
        operation=operation,
        holder_id_number=None,
        limit=limit,
        offset=offset,
    )


_LIST_PARAMETERS = frozenset({"status", "operation", "limit", "offset"})


def _looks_like_holder_filter(name: str) -> bool:
    # Any spelling: holder_id_number[], Holder-Id-Number, idNumber ...
    folded = "".join(character for character in name.lower() if character.isalnum())
    return "idnumber" in folded or "holder" in folded


@router.post(
    "/search",
    response_model=CertificatePage,
    summary="Find the calling issuer's certificates of a holder (ID number in the body)",
    responses={422: {"model": ErrorResponse}},
)
def search_certificates(
    body: CertificateSearch,
    issuer: IssuerDep,
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
) -> CertificatePage:
    """The certificates whose holder has this ID number (compared by keyed hash under every configured key
    version), optionally filtered by status and operation item; newest first, paged like the list."""
    return _certificate_page(
        session,
        issuer=issuer,
        settings=settings,
        catalogue=catalogue,
        status_filter=body.status,
        operation=body.operation,
        holder_id_number=body.holder_id_number,
        limit=body.limit,
        offset=body.offset,
    )


@router.get("/{certificate_id}", response_model=CertificateOut, summary="Read one of the calling issuer's certificates")
def read_certificate(
    certificate: OwnedCertificateDep, issuer: IssuerDep, settings: SettingsDep, catalogue: CatalogueDep
) -> CertificateOut:
    """Return the certificate with its status and QR text."""
    return certificate_out(certificate, issuer, settings, catalogue)


def _public_certificate(session: Session, certificate_id: str) -> Certificate:
    certificate = find_certificate(session, certificate_id)
    if certificate is None:
        raise ApiError(404, "certificate_not_found", "no such certificate")
    return certificate


def _qr_image(session: Session, settings: Settings, *, certificate_id: str, kind: str, scale: int) -> bytes:
    """The certificate's QR image from the cache, or read and rendered once (an unknown id is 404, never cached)."""
    key = (settings.public_base_url, certificate_id, kind, scale)
    cached = qr_images.get(key)
    if cached is not None:
        return cached

    def render() -> bytes:
        symbol = crypto.make_symbol(issuance.qr_text_of(_public_certificate(session, certificate_id), settings))
        return crypto.render_png(symbol, scale=scale) if kind == "png" else crypto.render_svg(symbol).encode()

    return qr_images.get_or_render(key, render)


@router.get(
    "/{certificate_id}/qr.png",
    summary="The certificate's QR code as PNG (public, cacheable)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 422: {"model": ErrorResponse}},
)
def qr_png(
    certificate_id: str,
    session: SessionDep,
    settings: SettingsDep,
    scale: Annotated[
        int, Query(description="pixels a module: 4, 8, 12 or 16", json_schema_extra={"enum": list(QR_SCALES)})
    ] = 8,
) -> Response:
    """Render the QR symbol (level Q, quiet zone 4) once and serve it from memory; ids are random, not guessable."""
    if scale not in QR_SCALES:
        raise ApiError(422, "unsupported_scale", f"scale must be one of {', '.join(map(str, QR_SCALES))}")
    png = _qr_image(session, settings, certificate_id=certificate_id, kind="png", scale=scale)
    return Response(png, media_type="image/png", headers={"Cache-Control": QR_CACHE})


@router.get(
    "/{certificate_id}/qr.svg",
    summary="The certificate's QR code as SVG (public, cacheable)",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def qr_svg(certificate_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """Render the QR symbol as scalable SVG for card printing (once; then from memory)."""
    svg = _qr_image(session, settings, certificate_id=certificate_id, kind="svg", scale=0)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": QR_CACHE})


@router.get(
    "/{certificate_id}/photo",
    summary="The holder photo (its issuer, or a short-lived signed URL from verify)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
def photo(
    certificate_id: str,
    request: Request,
    credentials: CredentialsDep,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    expires: Annotated[int | None, Query()] = None,
    sig: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Serve the EXIF-free photo to its issuer, or to anyone holding a fresh signed URL."""
    certificate = _public_certificate(session, certificate_id)
    path = f"/v1/certificates/{certificate_id}/photo"
    if expires is not None and sig is not None:
        if not url_signature_valid(
            path, expires, sig, settings.require("url_signing_key").encode(), now=clock.now().timestamp()
        ):
            raise ApiError(403, "forbidden", "the photo link is invalid or has expired")
    else:
        principal = get_principal(credentials, session, settings, clock, request.app.state.key_usage)
        if principal.issuer is None:
            raise ApiError(403, "forbidden", "only the issuer or a signed link may read the photo")
        if principal.issuer.id != certificate.issuer_id:  # as if absent: another issuer learns nothing
            raise ApiError(404, "certificate_not_found", "no such certificate")
    if certificate.photo is None:
        raise ApiError(404, "photo_not_found", "the certificate has no photo")
    return Response(
        certificate.photo,
        media_type=certificate.photo_type or "image/jpeg",
        headers={"Cache-Control": "private, max-age=300"},
    )


_STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {409: {"model": ErrorResponse}}
_STATUS_ACTIONS = (
    (
        "suspend",
        "Suspend (暂扣)",
        "Suspend a valid certificate; verification rejects it with `suspended` until reinstated.",
    ),
    ("reinstate", "Reinstate a suspended certificate", "Make a suspended certificate valid again."),
    ("revoke", "Revoke (吊销); final", "Revoke a certificate for good; it cannot be reinstated."),
    (
        "supersede",
        "Mark superseded by a reissue; final",
        "The certificate was reissued (e.g. under a new key after a compromise); verification rejects it with "
        "`superseded`, and its status list entry reads 3.",
    ),
)


def _add_status_route(action: str, summary: str, description: str) -> None:
    def change_status(
        body: StatusChange,
        certificate: OwnedCertificateDep,
        issuer: IssuerDep,
        session: SessionDep,
        settings: SettingsDep,
        catalogue: CatalogueDep,
        lists: StatusListsDep,
        clock: ClockDep,
    ) -> CertificateOut:
        with write_transaction(session):
            issuance.change_status(
                session,
                lists,
                certificate=certificate,
                action=action,
                reason=body.reason,
                actor=f"issuer:{issuer.code}",
                now=clock.now(),
            )
        STATUS_CHANGES.labels(issuer.code, action).inc()
        return certificate_out(certificate, issuer, settings, catalogue)

    router.add_api_route(
        f"/{{certificate_id}}/{action}",
        change_status,
        methods=["POST"],
        name=action,
        response_model=CertificateOut,
        summary=summary,
        description=description + " Its issuer only; a reason is required and kept in the audit trail.",
        responses=_STATUS_RESPONSES,
    )


for _action, _summary, _description in _STATUS_ACTIONS:
    _add_status_route(_action, _summary, _description)


@router.post(
    "/{certificate_id}/review",
    response_model=CertificateOut,
    summary="Record a passed review (复审)",
    responses=_STATUS_RESPONSES,
)
def review(
    body: ReviewRecord,
    certificate: OwnedCertificateDep,
    issuer: IssuerDep,
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    clock: ClockDep,
) -> CertificateOut:
    """Set the next review date; online verification uses it instead of the signed one."""
    now = clock.now()
    next_due = body.next_review_due or add_years(china_today(clock), settings.review_interval_years)
    with write_transaction(session):
        issuance.record_review(
            session, certificate=certificate, next_due=next_due, note=body.note, actor=f"issuer:{issuer.code}", now=now
        )
    return certificate_out(certificate, issuer, settings, catalogue)
