"""The operation catalogue, for verifiers that show a credential's job title (public)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from schemas.api import CatalogueOut

from ..deps import CatalogueDep

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get(
    "/catalogue", response_model=CatalogueOut, summary="The operation catalogue: item codes to job titles (public)"
)
async def get_catalogue(catalogue: CatalogueDep) -> JSONResponse:
    """The catalogue this service issues against, in the format of ``schemas/catalogue.json``."""
    return JSONResponse(catalogue.as_document(), headers={"Cache-Control": "public, max-age=3600"})
