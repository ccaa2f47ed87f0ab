"""The local storage backend's file route: signed, expiring URLs to results (S3 serves its own)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from gateway.deps import GatewayDep
from gateway.problems import Problem, responses
from tryon.jobs.storage import LocalStorage


def files_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["files"])

    @router.get(
        "/{key:path}",
        summary="A stored file (signed URL)",
        description="What a result_url points at with the local storage backend. The URL carries its "
        "expiry and an HMAC signature over key and expiry; anything else is refused.",
        responses={200: {"description": "The file.", "content": {"image/png": {}}}, **responses(403, 404)},
        response_class=FileResponse,
    )
    async def get_file(
        key: str,
        gateway: GatewayDep,
        expires: Annotated[int, Query(description="Unix time after which the URL stops working.")],
        signature: Annotated[
            # Hex only: hmac.compare_digest refuses non-ASCII strings (a TypeError, i.e. a 500, before this).
            str, Query(pattern="^[0-9a-fA-F]{1,128}$", description="HMAC-SHA256 of key and expiry, hex.")
        ],
    ) -> FileResponse:
        storage = gateway.storage
        if not isinstance(storage, LocalStorage):
            raise Problem(404, "files are served by the object store, not the gateway", kind="not-local")
        if not storage.verify_signature(key, expires, signature):
            raise Problem(
                403, "the link is not valid or has expired; ask for the job's status again for a new one",
                kind="bad-signature", title="Invalid or expired link",
            )  # fmt: skip
        path = storage.path(key)
        if not path.is_file():
            raise Problem(404, "the file has expired or was deleted", kind="file-gone", title="File gone")
        max_age = max(0, int(expires - time.time()))
        return FileResponse(
            path,
            media_type="image/png" if path.suffix == ".png" else "application/octet-stream",
            headers={"Cache-Control": f"private, max-age={max_age}"},
        )

    return router
