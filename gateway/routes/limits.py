"""What the server accepts, for clients and the page (upload limit, categories, whether a key is needed)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.context import API_PREFIX
from gateway.deps import GatewayDep
from gateway.schemas import Limits
from gateway.uploads import ACCEPTED_MEDIA_TYPES
from tryon import demo, imaging
from tryon.imaging import MIN_GARMENT_SIDE, MIN_PERSON_SIDE
from tryon.types import GarmentCategory

router = APIRouter(prefix=API_PREFIX, tags=["limits"])


@router.get("/limits", response_model=Limits, summary="Accepted inputs")
async def limits(gateway: GatewayDep) -> Limits:
    settings = gateway.settings
    return Limits(
        max_upload_mb=settings.max_upload_mb,
        max_pixels=imaging.MAX_PIXELS,
        min_person_side=MIN_PERSON_SIDE,
        min_garment_side=MIN_GARMENT_SIDE,
        media_types=list(ACCEPTED_MEDIA_TYPES),
        categories=[category.value for category in GarmentCategory],
        example_categories=[category.value for category in demo.EXAMPLE_CATEGORIES],
        api_key_required=bool(settings.api_keys),
    )
