"""Request and response models of certificate batches: a whole exam session (or listed results) issued at once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BATCH_RESULTS = 10_000
"""Most result ids one explicit batch request may list."""

ResultId = Annotated[str, Field(max_length=64)]


class BatchCreate(BaseModel):
    """Issue every passed, uncertified result of one exam session, or the listed exam results."""

    model_config = ConfigDict(extra="forbid")

    session: str | None = Field(default=None, max_length=64, description="an exam session id of the caller's")
    results: list[ResultId] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH_RESULTS, description="exam result ids (at most 10,000)"
    )

    @model_validator(mode="after")
    def _one_of(self) -> BatchCreate:
        if (self.session is None) == (self.results is None):
            raise ValueError("give either session or results")
        return self


class BatchAccepted(BaseModel):
    """A batch was accepted (or, for a known Idempotency-Key, this is the batch the key made)."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    links: dict[str, str]


class BatchError(BaseModel):
    """One result the batch did not certify (``result_id`` null: the batch as a whole failed)."""

    result_id: str | None
    code: str
    message: str


class BatchOut(BaseModel):
    """A batch's progress: ``done`` of ``total`` results handled, the certificates issued and the refusals."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    session: str | None
    total: int
    done: int
    certificate_ids: list[str]
    errors: list[BatchError]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]
