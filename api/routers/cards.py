"""Printable cards: one certificate's card, or a finished batch's cards on A4 sheets (PDF, the owning issuer only).

Rendering is CPU work, so the handlers are plain ``def`` and run on FastAPI's thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from schemas.api import ErrorResponse

from ..deps import CatalogueDep, IssuerDep, OwnedBatchDep, OwnedCertificateDep, SessionDep, SettingsDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..services import cards

router = APIRouter(
    tags=["cards"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        503: {"model": ErrorResponse, "description": "`card_font_missing` or `registry_unavailable`"},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)

_PDF = {200: {"content": {"application/pdf": {}}, "description": "print-ready PDF"}}


def _pdf(body: bytes, filename: str) -> Response:
    # Cards carry personal data: no cache keeps them. The filename is built from hex ids only.
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get(
    "/v1/certificates/{certificate_id}/card.pdf",
    summary="One certificate's printable card: a one-page PDF the size of the card (ID-1)",
    response_class=Response,
    responses={**_PDF, 409: {"model": ErrorResponse, "description": "`certificate_not_valid`"}},
)
def certificate_card(
    certificate: OwnedCertificateDep, issuer: IssuerDep, settings: SettingsDep, catalogue: CatalogueDep
) -> Response:
    """A card page of 85.6 x 53.98 mm, as card printers take it; only a valid certificate is printed."""
    body = cards.certificate_card(certificate, issuer=issuer, catalogue=catalogue, settings=settings)
    return _pdf(body, f"certseal-card-{certificate.serial}.pdf")


@router.get(
    "/v1/certificate-batches/{batch_id}/cards.pdf",
    summary="A finished batch's printable cards: A4 sheets of 10 ID-1 cards with crop marks",
    response_class=Response,
    responses={**_PDF, 409: {"model": ErrorResponse, "description": "`batch_not_done`"}},
)
def batch_cards(
    batch: OwnedBatchDep, issuer: IssuerDep, session: SessionDep, settings: SettingsDep, catalogue: CatalogueDep
) -> Response:
    """The batch's valid certificates in issue order, 2 x 5 cards a page; 409 until the batch is done."""
    body = cards.batch_cards(session, batch=batch, issuer=issuer, catalogue=catalogue, settings=settings)
    return _pdf(body, f"certseal-cards-{batch.id}.pdf")
