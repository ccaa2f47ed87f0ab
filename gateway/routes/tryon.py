"""Try-on jobs: submit, read status, follow events, download the result, delete."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from gateway.context import API_PREFIX, Gateway
from gateway.deps import GatewayDep, limit_requests, limit_submissions, require_api_key
from gateway.problems import FieldError, Problem, responses
from gateway.schemas import EXAMPLE_ID, JobDocument, TryOnOptions, job_document
from gateway.uploads import ACCEPTED_MEDIA_TYPES, Submission, clean_image, read_submission
from tryon.imaging import MIN_GARMENT_SIDE, MIN_PERSON_SIDE
from tryon.jobs.state import JobRecord, JobStatus, new_job_id
from tryon.jobs.storage import ObjectNotFound, StorageError, input_key, job_prefix
from tryon.jobs.webhooks import WebhookRefused, resolve_target
from tryon.observability import job_context

log = logging.getLogger(__name__)

router = APIRouter(
    prefix=f"{API_PREFIX}/tryon", tags=["try-on jobs"], dependencies=[Depends(require_api_key)]
)

IDEMPOTENCY_PREFIX = "tryon:idempotency:"
#: How long a claimed Idempotency-Key waits for its job to be created (a submission takes well under this).
PENDING_TTL_S = 30
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
#: After deleting a job that was running, its prefix is deleted again this much later: a worker that was
#: mid-stage may still write the result before it notices the cancellation.
LATE_DELETE_S = 60.0


def _submission_schema() -> dict[str, Any]:
    """The multipart body's schema, from TryOnOptions (one source for the docs and the validation)."""
    properties: dict[str, Any] = {}
    for name, schema in TryOnOptions.model_json_schema()["properties"].items():
        schema = dict(schema)
        branches = [branch for branch in schema.pop("anyOf", []) if branch.get("type") != "null"]
        if branches:
            schema.update(branches[0])
        if schema.get("default") is None:
            schema.pop("default", None)
        schema.pop("title", None)
        properties[name] = schema
    properties["category"] = {
        "type": "string", "enum": ["upper_body", "lower_body", "dress"], "default": "upper_body",
        "description": TryOnOptions.model_fields["category"].description,
    }  # fmt: skip
    photo = "PNG, JPEG or WebP (judged by content), at most the server's max_upload_mb (GET /api/limits)."
    return {
        "type": "object",
        "required": ["garment"],
        # The person photo, or the id of an earlier job whose person photo to reuse (not both).
        "oneOf": [{"required": ["person"]}, {"required": ["person_from"]}],
        "additionalProperties": False,
        "properties": {
            "person": {"type": "string", "format": "binary", "description": f"Photo of the person. {photo}"},
            "person_from": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]{1,64}$",
                "description": "Instead of `person`: the id of an earlier job (yours, not deleted) whose "
                "person photo to reuse, to try another garment without uploading the person again.",
                "examples": [EXAMPLE_ID],
            },
            "garment": {
                "type": "string",
                "format": "binary",
                "description": f"Photo of the garment. {photo}",
            },
            **properties,
        },
    }


_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": _submission_schema(),
                "encoding": {
                    "person": {"contentType": ", ".join(ACCEPTED_MEDIA_TYPES)},
                    "garment": {"contentType": ", ".join(ACCEPTED_MEDIA_TYPES)},
                },
            }
        },
    }
}


def _valid_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and set(job_id) <= _ID_CHARS


def _not_found(job_id: str) -> Problem:
    return Problem(
        404,
        f"no job {job_id!r}: it never existed, was deleted, or expired",
        kind="job-not-found",
        title="Job not found",
    )


async def _record(gateway: Gateway, job_id: str) -> JobRecord:
    if not _valid_id(job_id):
        raise _not_found(job_id)
    record = await run_in_threadpool(gateway.store.get, job_id)
    if record is None:
        raise _not_found(job_id)
    return record


def _document(gateway: Gateway, record: JobRecord) -> JobDocument:
    return job_document(record, storage=gateway.storage, url_expiry_s=gateway.settings.url_expiry_s)


# --- submission -----------------------------------------------------------------------------------------


async def _check_backpressure(gateway: Gateway) -> None:
    limit = gateway.settings.max_queue_depth
    if limit <= 0:
        return
    depth = await run_in_threadpool(gateway.queue.depth)
    if depth >= limit:
        gateway.metrics.refused.labels("queue_full").inc()
        retry = gateway.settings.backpressure_retry_after_s
        raise Problem(
            503, f"the queue holds {depth} jobs (limit {limit}); try again in {retry} s",
            kind="queue-full", title="Busy", headers={"Retry-After": str(retry)},
        )  # fmt: skip


def _options(submission: Submission) -> TryOnOptions:
    fields = {name: value for name, value in submission.fields.items() if name != "person_from"}
    try:
        return TryOnOptions.model_validate(fields)
    except ValidationError as error:
        errors = [
            FieldError(field=".".join(str(part) for part in item["loc"]) or "request", message=item["msg"])
            for item in error.errors()
        ]
        raise Problem(
            422,
            "; ".join(f"{item.field}: {item.message}" for item in errors),
            kind="invalid-request",
            errors=errors,
        ) from error


async def _check_webhook(gateway: Gateway, url: str | None) -> None:
    if url is None:
        return
    try:
        await run_in_threadpool(resolve_target, url, allow_private=gateway.settings.webhook_allow_private)
    except WebhookRefused as error:
        message = str(error).removeprefix("webhook_url: ")
        raise Problem.field(
            422, "webhook_url", message, kind="webhook-refused", title="Webhook URL refused"
        ) from error


class _Idempotency:
    """Idempotency-Key: the first request with a key creates the job; a retry gets the same job back."""

    def __init__(self, gateway: Gateway, request: Request, key: str, fingerprint: str) -> None:
        client = getattr(request.state, "api_key_id", None) or (
            request.client.host if request.client else "-"
        )
        digest = hashlib.sha256(f"{client}\n{key}".encode()).hexdigest()
        self.redis = gateway.redis
        self.name = IDEMPOTENCY_PREFIX + digest
        self.fingerprint = fingerprint
        self.ttl = gateway.settings.idempotency_ttl

    async def claim(self, gateway: Gateway) -> JobRecord | None:
        """The job an earlier request with this key created (None: this request goes ahead and creates it)."""
        for _ in range(3):
            # A short claim: if this process dies before the job exists, the key frees itself soon.
            if await self.redis.set(self.name, f"pending {self.fingerprint}", nx=True, ex=PENDING_TTL_S):
                return None
            raw = await self.redis.get(self.name)
            if raw is None:
                continue  # expired or released meanwhile: try to claim again
            job_id, fingerprint = (raw.decode() if isinstance(raw, bytes) else raw).split(" ", 1)
            if fingerprint != self.fingerprint:
                raise Problem.field(
                    422, "Idempotency-Key", "already used with a different request (photos or fields differ)",
                    kind="idempotency-key-reused", title="Idempotency key reused",
                )  # fmt: skip
            if job_id == "pending":
                raise Problem(
                    409, "a request with this Idempotency-Key is still being processed; retry shortly",
                    kind="idempotency-in-progress", headers={"Retry-After": "1"},
                )  # fmt: skip
            record = await run_in_threadpool(gateway.store.get, job_id)
            if record is not None:
                return record
            # The job was deleted or expired: the key is free again.
            await self.redis.delete(self.name)
        raise Problem(409, "the Idempotency-Key is contended; retry shortly", kind="idempotency-in-progress")

    async def complete(self, job_id: str) -> None:
        await self.redis.set(self.name, f"{job_id} {self.fingerprint}", ex=self.ttl)

    async def release(self) -> None:
        await self.redis.delete(self.name)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (a UUID): a retried submission with the same key and the same body "
        "returns the same job instead of creating a second one.",
        examples=["8e03978e-40d5-43e8-bc93-6894a57f9324"],
    ),
]


@router.post(
    "",
    status_code=202,
    response_model=JobDocument,
    summary="Submit a try-on job",
    description="Upload the person's photo and the garment's photo (multipart/form-data). The photos are "
    "checked, turned upright (EXIF orientation), stripped of all metadata and stored; the job is queued. "
    "Answers 202 with the job document and a Location header; follow it with GET, the events stream or a "
    "webhook.",
    dependencies=[Depends(limit_submissions)],
    responses={
        202: {
            "description": "Queued.",
            "headers": {"Location": {"description": "The job's status URL.", "schema": {"type": "string"}}},
        },
        **responses(400, 401, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra=_SUBMIT_BODY,
)
async def submit(
    request: Request, response: Response, gateway: GatewayDep, idempotency_key: IdempotencyKey = None
) -> JobDocument:
    settings = gateway.settings
    await _check_backpressure(gateway)
    try:
        submission = await read_submission(
            request.headers.get("content-type", ""),
            request.headers.get("content-length"),
            request.stream(),
            max_file_bytes=settings.max_upload_bytes,
            max_file_mb=settings.max_upload_mb,
            max_body_bytes=settings.max_body_bytes,
        )
    except Problem as problem:
        gateway.metrics.refused.labels("too_large" if problem.status == 413 else "invalid").inc()
        raise
    except ClientDisconnect as error:  # nobody to answer; not a server error either
        raise Problem(400, "the upload was interrupted before it ended", kind="upload-interrupted") from error
    options = _options(submission)
    await _check_webhook(gateway, options.webhook_url)

    idempotency = None
    if idempotency_key is not None:
        idempotency = _Idempotency(gateway, request, idempotency_key, submission.fingerprint())
        earlier = await idempotency.claim(gateway)
        if earlier is not None:
            response.headers["Location"] = f"{API_PREFIX}/tryon/{earlier.id}"
            response.headers["Idempotent-Replayed"] = "true"
            return _document(gateway, earlier)
    try:
        record = await _create_job(gateway, submission, options)
    except BaseException:
        if idempotency is not None:
            # The client retries with the same key: it must be free again, not pending until its TTL.
            await _until_done(gateway, "releasing an Idempotency-Key", idempotency.release)
        raise
    if idempotency is not None:
        # The job exists and is queued: answer 202 whatever happens here. If Redis refuses to record the key's
        # job now, that is retried in the background; an error answer would make the client retry, find the
        # key pending until its TTL and then submit a second job.
        job_id = record.id
        await _until_done(gateway, "completing an Idempotency-Key", lambda: idempotency.complete(job_id))
    gateway.metrics.submitted.inc()
    response.headers["Location"] = f"{API_PREFIX}/tryon/{record.id}"
    return _document(gateway, record)


async def _create_job(gateway: Gateway, submission: Submission, options: TryOnOptions) -> JobRecord:
    files = submission.files
    storage, store = gateway.storage, gateway.store
    try:
        person_job = (
            _clean_person(files["person"])
            if "person" in files
            else _earlier_person(gateway, submission.fields["person_from"])
        )
        person_png, garment = await asyncio.gather(
            person_job,
            run_in_threadpool(clean_image, files["garment"], "garment", min_side=MIN_GARMENT_SIDE, rgba=True),
        )
    except Problem as problem:
        gateway.metrics.refused.labels("unsupported" if problem.status == 415 else "invalid").inc()
        raise
    job_id = new_job_id()
    keys = {"person": input_key(job_id, "person"), "garment": input_key(job_id, "garment")}

    def persist() -> JobRecord:
        storage.put(keys["person"], person_png, "image/png")
        storage.put(keys["garment"], garment.png, "image/png")
        return store.create(
            job_id=job_id,
            category=options.category.value,
            options=options.pipeline_options(),
            input_keys=keys,
            webhook_url=options.webhook_url,
        )

    try:
        record = await run_in_threadpool(persist)
    except BaseException as error:
        # Nothing of the job may stay: the client is answered an error and submits again. That includes the
        # record: a create whose reply was lost (Redis closing the connection) may have written it anyway.
        await _discard_unqueued(gateway, job_id)
        if isinstance(error, StorageError):
            log.exception("storing the inputs of job %s failed", job_id)
            raise Problem(503, f"the photos could not be stored ({error}); try again",
                          kind="storage-unavailable", headers={"Retry-After": "5"}) from error  # fmt: skip
        raise
    try:
        with job_context(job_id):  # the publish span and the task headers carry the job and the trace
            await run_in_threadpool(gateway.queue.enqueue, job_id)
    except Exception as error:
        log.exception("queueing job %s failed", job_id)
        await _discard_unqueued(gateway, job_id)
        raise Problem(503, "the job could not be queued; try again", kind="queue-unavailable",
                      headers={"Retry-After": "5"}) from error  # fmt: skip
    return record


#: How long the gateway keeps retrying a clean-up that Redis refused (Redis restarting).
CLEANUP_RETRY_S = 60.0


async def _until_done(gateway: Gateway, what: str, action: Callable[[], Awaitable[None]]) -> None:
    """Run a clean-up now; if it fails (Redis or the storage down), keep retrying it in the background for
    up to :data:`CLEANUP_RETRY_S` rather than failing the request it belongs to or forgetting it."""
    try:
        await action()
        return
    except Exception as error:
        log.warning("%s failed (%s); retrying in the background", what, error)

    async def retry() -> None:
        deadline = time.monotonic() + CLEANUP_RETRY_S
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            try:
                await action()
                log.info("%s: done", what)
                return
            except Exception:
                continue
        log.error("%s: still failing after %.0f s; given up", what, CLEANUP_RETRY_S)

    gateway.spawn(retry())


async def _discard_unqueued(gateway: Gateway, job_id: str) -> None:
    """Delete the record and photos of a job that never reached the queue.

    The client is answered 503 without a job id and submits again, so the record must not stay: ``queued``
    with no task behind it, it would never move. The broker and the records usually share one Redis, so
    when the publish failed the delete may fail too: it is then retried in the background until it lands.
    """

    def discard() -> None:
        # Photos first: when Redis is what failed, they still go at once (the record's delete is retried).
        gateway.storage.delete_prefix(job_prefix(job_id))
        gateway.store.delete(job_id)

    await _until_done(gateway, f"deleting unqueued job {job_id}", lambda: run_in_threadpool(discard))


async def _clean_person(data: bytes) -> bytes:
    """The uploaded person photo, checked and re-encoded (PNG bytes)."""
    return (await run_in_threadpool(clean_image, data, "person", min_side=MIN_PERSON_SIDE)).png


async def _earlier_person(gateway: Gateway, job_id: str) -> bytes:
    """The stored (checked, metadata-free) person photo of an earlier job, for person_from."""

    def gone(why: str) -> Problem:
        return Problem.field(
            422, "person_from", why, kind="person-from-gone", title="Earlier photo not available"
        )

    if not _valid_id(job_id):
        raise gone("not a job id")
    record = await run_in_threadpool(gateway.store.get, job_id)
    if record is None or "person" not in record.input_keys:
        raise gone(f"no job {job_id!r} (deleted or expired): send the person photo again")
    try:
        return await run_in_threadpool(gateway.storage.get, record.input_keys["person"])
    except ObjectNotFound as error:
        raise gone("the earlier job's person photo has expired: send it again") from error


# --- reading --------------------------------------------------------------------------------------------

JOB_ID_DOC = {"description": "The job's id, as the submission answered it.", "examples": [EXAMPLE_ID]}


@router.get(
    "/{job_id}",
    response_model=JobDocument,
    summary="Status of a job",
    description="Status, stage, progress and per-stage timings; once succeeded, a signed result_url (valid "
    "until result_expires_at; ask again for a fresh one) and a download_url.",
    dependencies=[Depends(limit_requests)],
    responses=responses(401, 404, 429),
)
async def status(job_id: str, gateway: GatewayDep) -> JobDocument:
    return _document(gateway, await _record(gateway, job_id))


def _event(record: JobDocument, version: int) -> str:
    return f"id: {version}\nevent: status\ndata: {record.model_dump_json()}\n\n"


@router.get(
    "/{job_id}/events",
    summary="Follow a job (server-sent events)",
    description="A text/event-stream of `status` events, each carrying the job document as JSON (the same "
    "as GET /api/tryon/{id}); the first is the current state, then one per change. The stream ends after "
    "the final status (succeeded, failed, cancelled) or when the job is deleted (`gone` event). Comments "
    "keep idle connections open.",
    dependencies=[Depends(limit_requests)],
    responses={
        200: {
            "description": "The event stream.",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": (
                        'id: 3\nevent: status\ndata: {"id": "...", "status": "running", "stage": "warp", '
                        '"progress": 40}\n\n'
                    ),
                }
            },
        },
        **responses(401, 404, 429),
    },
    response_class=StreamingResponse,
)
async def events(job_id: str, gateway: GatewayDep) -> StreamingResponse:
    first = await _record(gateway, job_id)
    settings = gateway.settings

    async def stream() -> AsyncIterator[str]:
        queue: asyncio.Queue[JobRecord | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for record in gateway.store.asubscribe(job_id):
                    await queue.put(record)
            except Exception:
                log.exception("event stream of job %s failed", job_id)
            finally:
                await queue.put(None)

        gateway.metrics.event_streams.inc()
        task = asyncio.create_task(pump())
        last: JobRecord | None = None
        deadline = time.monotonic() + settings.sse_max_duration_s
        try:
            yield f"retry: 2000\n{_event(_document(gateway, first), first.version)}"
            last = first
            while time.monotonic() < deadline:
                try:
                    record = await asyncio.wait_for(queue.get(), settings.sse_keepalive_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if record is None:
                    if last is None or not last.final:
                        yield f"event: gone\ndata: {json.dumps({'id': job_id, 'status': 'gone'})}\n\n"
                    return
                if record.version <= last.version:
                    continue
                last = record
                yield _event(_document(gateway, record), record.version)
        finally:
            task.cancel()
            gateway.metrics.event_streams.dec()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{job_id}/result",
    summary="Download the result",
    description="The result PNG as a file download (Content-Disposition: attachment), for pages that cannot "
    "download from the storage's signed URL directly.",
    dependencies=[Depends(limit_requests)],
    responses={
        200: {"description": "The result image.", "content": {"image/png": {}}},
        **responses(401, 404, 409, 429),
    },
    response_class=Response,
)
async def result(job_id: str, gateway: GatewayDep) -> Response:
    record = await _record(gateway, job_id)
    if record.status != JobStatus.SUCCEEDED or not record.result_key:
        raise Problem(
            409, f"the job has no result (it is {record.status.value})", kind="no-result", title="No result"
        )
    try:
        data = await run_in_threadpool(gateway.storage.get, record.result_key)
    except ObjectNotFound as error:
        raise Problem(
            404, "the result has expired or was deleted", kind="result-gone", title="Result gone"
        ) from error
    return Response(
        data,
        media_type="image/png",
        headers={
            "Content-Disposition": f'attachment; filename="tryon-{job_id}.png"',
            "Cache-Control": "private, no-store",
        },
    )


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Cancel and delete a job",
    description="Cancels the job if it is queued or running, deletes its photos and result from storage and "
    "forgets it: afterwards the job answers 404. A person's photo is personal data; this is how to erase it.",
    dependencies=[Depends(limit_requests)],
    responses=responses(401, 404, 429),
    response_class=Response,
)
async def delete(job_id: str, gateway: GatewayDep) -> Response:
    record = await _record(gateway, job_id)
    store, storage = gateway.store, gateway.storage
    was_active = not record.final
    if was_active:
        await run_in_threadpool(store.cancel, job_id)
        try:
            await run_in_threadpool(gateway.queue.revoke, job_id)
        except Exception:  # best effort: the worker also checks the record's status
            log.warning("revoking job %s failed", job_id, exc_info=True)
    await run_in_threadpool(storage.delete_prefix, job_prefix(job_id))
    await run_in_threadpool(store.delete, job_id)
    if was_active:

        async def late_delete() -> None:
            await asyncio.sleep(LATE_DELETE_S)
            await run_in_threadpool(storage.delete_prefix, job_prefix(job_id))

        gateway.spawn(late_delete())
    gateway.metrics.deleted.inc()
    return Response(status_code=204)
