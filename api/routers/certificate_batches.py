"""Certificate batches: submit the certificates of a whole exam session (or a list of results), read progress."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from schemas.api import ErrorResponse
from schemas.batches import BatchAccepted, BatchCreate, BatchError, BatchOut

from ..deps import ClockDep, IdempotencyKeyDep, IssuerDep, OwnedBatchDep, SessionDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..services import batches

router = APIRouter(
    prefix="/v1/certificate-batches",
    tags=["certificate batches"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)


def _links(batch_id: str) -> dict[str, str]:
    base = f"/v1/certificate-batches/{batch_id}"
    return {"self": base, "cards_pdf": f"{base}/cards.pdf"}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    summary="Issue the certificates of an exam session or of listed results as a background job (issuer API key)",
    description="Answers 202 at once; `GET` the `self` link for progress. The same `Idempotency-Key` with the "
    "same body answers with the same batch (never a second one); with another body it is 409 `batch_conflict`.",
    responses={
        409: {"model": ErrorResponse},
        422: {"model": ErrorResponse, "description": "`validation_error`, `invalid_idempotency_key`"},
    },
)
def submit_batch(
    body: BatchCreate,
    request: Request,
    issuer: IssuerDep,
    session: SessionDep,
    clock: ClockDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    """Record the batch and wake this process's batch runner."""
    batch = batches.submit_batch(
        session,
        issuer=issuer,
        request=batches.BatchRequest(
            session_id=body.session, result_ids=tuple(body.results) if body.results is not None else None
        ),
        idempotency_key=idempotency_key,
        actor=f"issuer:{issuer.code}",
        now=clock.now(),
    )
    request.app.state.batch_runner.wake()
    payload = BatchAccepted(id=batch.id, status=batch.status, links=_links(batch.id))  # type: ignore[arg-type]
    return JSONResponse(
        payload.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/certificate-batches/{batch.id}"}
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="A batch's progress, certificates and per-result errors")
def read_batch(batch: OwnedBatchDep, session: SessionDep) -> BatchOut:
    """Read the batch as it stands now."""
    view = batches.batch_view(session, batch.id)
    current = view.batch
    return BatchOut(
        id=current.id,
        status=current.status,  # type: ignore[arg-type]
        session=current.session_id,
        total=current.total,
        done=current.done,
        certificate_ids=view.certificate_ids,
        errors=[BatchError.model_validate(error) for error in current.errors],
        created_at=current.created_at,
        started_at=current.started_at,
        finished_at=current.finished_at,
        links=_links(current.id),
    )
