"""The built-in example (tryon.demo) as images, for the page's "try the example" control."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.context import API_PREFIX
from gateway.deps import limit_requests
from gateway.problems import Problem, responses
from tryon import demo, imaging
from tryon.types import GarmentCategory

router = APIRouter(prefix=f"{API_PREFIX}/examples", tags=["examples"], dependencies=[Depends(limit_requests)])

_CACHE = {"Cache-Control": "public, max-age=86400"}


@lru_cache(maxsize=1)
def _person_png() -> bytes:
    return imaging.encode_png(demo.example_person(), compression=6)


@lru_cache(maxsize=len(GarmentCategory))
def _garment_png(category: GarmentCategory) -> bytes:
    return imaging.encode_png(demo.example_garment(category), compression=6)


@router.get(
    "/person.png",
    summary="Example person photo",
    description=f"{demo.PERSON_CREDIT}.",
    responses={200: {"description": "PNG image.", "content": {"image/png": {}}}, **responses(429)},
    response_class=Response,
)
async def example_person() -> Response:
    return Response(await run_in_threadpool(_person_png), media_type="image/png", headers=_CACHE)


@router.get(
    "/garment.png",
    summary="Example garment photo",
    description="A garment drawn by the project, for the given category (examples exist for "
    f"{', '.join(category.value for category in demo.EXAMPLE_CATEGORIES)}).",
    responses={200: {"description": "PNG image.", "content": {"image/png": {}}}, **responses(404, 422, 429)},
    response_class=Response,
)
async def example_garment(
    category: Annotated[
        GarmentCategory, Query(description="The garment category.")
    ] = GarmentCategory.UPPER_BODY,
) -> Response:
    if category not in demo.EXAMPLE_CATEGORIES:
        available = ", ".join(item.value for item in demo.EXAMPLE_CATEGORIES)
        raise Problem.field(
            404, "category", f"no example garment for {category.value}: the example person shows the upper "
            f"body only (examples exist for {available})", kind="no-example", title="No example",
        )  # fmt: skip
    return Response(await run_in_threadpool(_garment_png, category), media_type="image/png", headers=_CACHE)
