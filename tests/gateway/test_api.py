"""Every rule of the REST API, each with its status code and problem+json body, against a real Redis."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.gateway.conftest import RunningGateway, encode, photos, running_gateway
from tests.imagegen import draw_garment, person_photo
from tryon.jobs.state import JobStatus
from tryon.jobs.storage import input_key, job_prefix

PROBLEM = "application/problem+json"


def assert_problem(
    reply: httpx.Response, status: int, *, field: str | None = None, kind: str | None = None
) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    body = reply.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if kind is not None:
        assert body["type"] == f"urn:tryon:problem:{kind}"
    if field is not None:
        assert [error["field"] for error in body["errors"]] == [field], body
        assert field in body["detail"]
    return body


def submit(client: httpx.Client, person: bytes, garment: bytes, **data: str) -> httpx.Response:
    headers = {"Idempotency-Key": data.pop("idempotency_key")} if "idempotency_key" in data else {}
    return client.post("/api/tryon", files=photos(person, garment), data=data, headers=headers)


# --- health ---------------------------------------------------------------------------------------------


def test_health_ready_and_limits(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        assert client.get("/api/health").json() == {"status": "ok"}
        ready = client.get("/api/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert {name for name, check in ready.json()["checks"].items() if check["ok"]} == {
            "redis",
            "broker",
            "storage",
        }
        limits = client.get("/api/limits").json()
        assert limits["max_upload_mb"] == 15
        assert limits["api_key_required"] is False
        assert limits["example_categories"] == ["upper_body"]


def test_ready_answers_503_naming_what_is_down(tmp_path: Path, person_png: bytes, garment_png: bytes) -> None:
    from tryon.local_services import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    with running_gateway(tmp_path, dead) as down, down.client() as client:
        reply = client.get("/api/ready")
        assert reply.status_code == 503
        assert reply.headers["retry-after"]
        checks = reply.json()["checks"]
        assert checks["redis"]["ok"] is False and "Connection" in checks["redis"]["detail"]
        assert checks["storage"]["ok"] is True
        assert client.get("/api/health").status_code == 200  # alive, just not ready
        # With Redis down, submissions and reads are refused as temporary (503 + Retry-After), not 500.
        for reply in (
            client.post("/api/tryon", files=photos(person_png, garment_png)),
            client.get("/api/tryon/someJobId123"),
        ):
            assert_problem(reply, 503, kind="dependency-unavailable")
            assert reply.headers["retry-after"] == "5"
        assert not any(Path(down.settings.storage_dir).iterdir())  # no photos left behind without a job


def test_a_job_that_cannot_be_queued_leaves_no_record_and_no_photos(
    tmp_path: Path, redis_url: str, person_png: bytes, garment_png: bytes
) -> None:
    """The broker is down, the record store is not: 503, and nothing stays behind (a record ``queued`` with
    no task would never move; the client, answered without a job id, submits again)."""
    import redis as redis_client

    from tryon.jobs.state import KEY_PREFIX
    from tryon.local_services import free_port

    client = redis_client.Redis.from_url(redis_url)
    before = set(client.scan_iter(f"{KEY_PREFIX}*"))
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    with running_gateway(tmp_path, redis_url, broker_url=dead_broker) as down, down.client() as http:
        reply = http.post("/api/tryon", files=photos(person_png, garment_png))
        assert_problem(reply, 503, kind="queue-unavailable")
        assert reply.headers["retry-after"] == "5"
        assert set(client.scan_iter(f"{KEY_PREFIX}*")) == before
        assert not any(Path(down.settings.storage_dir).rglob("*.png"))


# --- submission -----------------------------------------------------------------------------------------


def test_submit_stores_clean_inputs_creates_and_queues_the_job(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    depth_before = gateway.context.queue.depth()
    with gateway.client() as client:
        reply = submit(client, person_png, garment_png, category="upper_body", seed="7", steps="20")
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert reply.headers["location"] == f"/api/tryon/{job['id']}" == job["status_url"]
    assert job["status"] == "queued" and job["progress"] == 0
    assert job["events_url"] == f"/api/tryon/{job['id']}/events"
    assert job["result_url"] is None and job["download_url"] is None
    record = gateway.context.store.get(job["id"])
    assert record is not None and record.status == JobStatus.QUEUED
    assert record.options == {"seed": 7, "steps": 20}
    assert record.category == "upper_body"
    stored = gateway.context.storage.get(record.input_keys["person"])
    assert Image.open(io.BytesIO(stored)).size == (512, 512)
    assert gateway.context.queue.depth() == depth_before + 1


def test_exif_orientation_applied_and_all_metadata_stripped(
    gateway: RunningGateway, garment_png: bytes
) -> None:
    photo = Image.fromarray(person_photo(512)[:, 64:448])  # 384 wide, 512 high
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate 90 degrees clockwise
    exif[0x010F] = "PhoneMaker"
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps  # GPS IFD
    jpeg = encode(photo, "JPEG", quality=92, exif=exif.tobytes())
    assert Image.open(io.BytesIO(jpeg)).getexif().get_ifd(0x8825)  # the upload does carry GPS

    with gateway.client() as client:
        reply = submit(client, jpeg, garment_png)
    assert reply.status_code == 202, reply.text
    record = gateway.context.store.get(reply.json()["id"])
    assert record is not None
    stored = gateway.context.storage.get(record.input_keys["person"])
    image = Image.open(io.BytesIO(stored))
    assert image.format == "PNG"
    assert image.size == (512, 384)  # rotated upright
    assert not image.getexif() and "exif" not in image.info
    assert not any(key in image.info for key in ("exif", "icc_profile", "XML:com.adobe.xmp", "gps"))
    assert b"PhoneMaker" not in stored and b"eXIf" not in stored


def test_too_small_bomb_truncated_and_corrupt_photos_are_422(
    gateway: RunningGateway, garment_png: bytes
) -> None:
    tiny = encode(np.zeros((32, 48, 3), np.uint8))
    # A PNG header claiming 20000 x 20000 pixels (400 MP) with no pixel data: refused before decoding.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
    bomb += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\0\0\0\0IEND\xaeB`\x82"
    jpeg = encode(person_photo(256), "JPEG")
    truncated = jpeg[: len(jpeg) // 2]
    corrupt = b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50
    with gateway.client() as client:
        body = assert_problem(submit(client, tiny, garment_png), 422, field="person", kind="invalid-image")
        assert "too small" in body["detail"]
        body = assert_problem(submit(client, bomb, garment_png), 422, field="person", kind="invalid-image")
        assert "exceeds" in body["detail"]
        assert_problem(submit(client, truncated, garment_png), 422, field="person", kind="invalid-image")
        assert_problem(submit(client, garment_png, corrupt), 422, field="garment", kind="invalid-image")


def test_formats_are_judged_by_content(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    gif = encode(draw_garment(size=(128, 128)), "GIF")
    with gateway.client() as client:
        # A GIF named .png and declared image/png is still a GIF.
        assert_problem(submit(client, person_png, gif), 415, field="garment", kind="unsupported-image")
        assert_problem(submit(client, b"just some text", garment_png), 415, field="person")
        # A WebP and a JPEG named .txt are fine.
        webp = encode(person_photo(256), "WEBP")
        files = {"person": ("a.txt", webp, "text/plain"), "garment": ("b.bin", garment_png, "text/plain")}
        assert client.post("/api/tryon", files=files).status_code == 202
        # Not multipart at all.
        reply = client.post("/api/tryon", json={"person": "x"})
        assert_problem(reply, 415, kind="unsupported-media-type")


def test_fields_unknown_missing_duplicated_and_out_of_range_are_422(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    with gateway.client() as client:
        assert_problem(submit(client, person_png, garment_png, colour="red"), 422, field="colour")
        only_person = {"person": ("p.png", person_png, "image/png")}
        assert_problem(client.post("/api/tryon", files=only_person), 422, field="garment")
        assert_problem(
            client.post("/api/tryon", files=photos(person_png, garment_png), data={"person": "text"}),
            422,
            field="person",
        )
        for name, value in [
            ("steps", "0"), ("steps", "151"), ("steps", "ten"), ("seed", "-1"), ("guidance", "31"),
            ("guidance", "nan"), ("strength", "0"), ("strength", "1.5"), ("category", "hat"),
            ("webhook_url", ""),
        ]:  # fmt: skip
            body = assert_problem(submit(client, person_png, garment_png, **{name: value}), 422, field=name)
            assert body["type"] == "urn:tryon:problem:invalid-request"


def test_upload_over_the_limit_is_413(tmp_path: Path, redis_url: str, garment_png: bytes) -> None:
    big = encode(
        np.random.default_rng(0).integers(0, 255, (800, 800, 3), np.uint8)
    )  # ~1.9 MB, incompressible
    assert len(big) > 1024 * 1024
    with running_gateway(tmp_path, redis_url, max_upload_mb=1) as small, small.client() as client:
        body = assert_problem(submit(client, big, garment_png), 413, field="person", kind="upload-too-large")
        assert "1 MB" in body["detail"]
        # A declared body over the total limit is refused before any of it is read: only the headers are
        # sent here, and the answer comes all the same.
        host, port = small.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/tryon HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                + f"Content-Length: {4 * 1024 * 1024}\r\n\r\n".encode()
            )
            answer = sock.recv(65536).decode()
        head, _, body = answer.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 413") and "application/problem+json" in head
        assert json.loads(body)["type"] == "urn:tryon:problem:upload-too-large"


def test_webhook_url_must_be_public_http(
    tmp_path: Path, redis_url: str, person_png: bytes, garment_png: bytes
) -> None:
    with (
        running_gateway(tmp_path, redis_url, webhook_allow_private=False) as strict,
        strict.client() as client,
    ):
        for url, reason in [
            ("ftp://example.com/hook", "scheme"),
            ("http://127.0.0.1:9/hook", "non-public"),
            ("http://169.254.169.254/latest/meta-data", "non-public"),
            ("http://10.1.2.3/hook", "non-public"),
            ("http://[::1]/hook", "non-public"),
            ("http://user:pw@example.com/hook", "credentials"),
        ]:
            body = assert_problem(
                submit(client, person_png, garment_png, webhook_url=url),
                422,
                field="webhook_url",
                kind="webhook-refused",
            )
            assert reason in body["detail"], body


# --- idempotency ----------------------------------------------------------------------------------------


def test_idempotency_key_returns_the_same_job(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    depth = gateway.context.queue.depth()
    with gateway.client() as client:
        first = submit(client, person_png, garment_png, seed="1", idempotency_key="key-123")
        again = submit(client, person_png, garment_png, seed="1", idempotency_key="key-123")
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        assert gateway.context.queue.depth() == depth + 1  # queued once

        # The same key with a different request is an error, not a silent replay.
        other = submit(client, person_png, garment_png, seed="2", idempotency_key="key-123")
        assert_problem(other, 422, field="Idempotency-Key", kind="idempotency-key-reused")

        # Once the job is deleted, the key creates a new one.
        assert client.delete(first.headers["location"]).status_code == 204
        third = submit(client, person_png, garment_png, seed="1", idempotency_key="key-123")
        assert third.status_code == 202 and third.json()["id"] != first.json()["id"]

        # Keys are checked: printable ASCII, at most 255 characters.
        assert_problem(submit(client, person_png, garment_png, idempotency_key="x" * 300), 422)


# --- reading and deleting ---------------------------------------------------------------------------------


def test_unknown_jobs_paths_and_methods(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        assert_problem(client.get("/api/tryon/doesNotExist123"), 404, kind="job-not-found")
        assert_problem(client.get("/api/tryon/bad%20id%2F.."), 404)
        assert_problem(client.delete("/api/tryon/doesNotExist123"), 404)
        assert_problem(client.get("/api/tryon/doesNotExist123/result"), 404)
        assert_problem(client.get("/api/no-such-thing"), 404)
        assert_problem(client.put("/api/tryon"), 405)
        assert_problem(client.patch("/api/tryon/abc"), 405)
        assert_problem(
            client.get("/api/examples/garment.png", params={"category": "hat"}), 422, field="category"
        )
        assert_problem(
            client.get("/api/examples/garment.png", params={"category": "dress"}), 404, field="category"
        )


def test_delete_cancels_removes_the_photos_and_then_404(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    storage, store = gateway.context.storage, gateway.context.store
    with gateway.client() as client:
        job = submit(client, person_png, garment_png).json()
        assert storage.exists(input_key(job["id"], "person"))
        assert_problem(client.get(f"/api/tryon/{job['id']}/result"), 409, kind="no-result")
        reply = client.delete(f"/api/tryon/{job['id']}")
        assert reply.status_code == 204 and reply.content == b""
        assert store.get(job["id"]) is None
        assert not storage.exists(input_key(job["id"], "person"))
        assert not (Path(gateway.settings.storage_dir) / job_prefix(job["id"])).exists()
        assert_problem(client.get(f"/api/tryon/{job['id']}"), 404)
        assert_problem(client.delete(f"/api/tryon/{job['id']}"), 404)


# --- protection -------------------------------------------------------------------------------------------


def test_backpressure_503_with_retry_after(
    tmp_path: Path, redis_url: str, person_png: bytes, garment_png: bytes
) -> None:
    settings = {"max_queue_depth": 2, "backpressure_retry_after_s": 42}
    with running_gateway(tmp_path, redis_url, **settings) as busy, busy.client() as client:
        assert submit(client, person_png, garment_png).status_code == 202
        assert submit(client, person_png, garment_png).status_code == 202
        reply = submit(client, person_png, garment_png)
        body = assert_problem(reply, 503, kind="queue-full")
        assert reply.headers["retry-after"] == "42"
        assert "2 jobs" in body["detail"]


def test_rate_limits_429_with_retry_after(
    tmp_path: Path, redis_url: str, person_png: bytes, garment_png: bytes
) -> None:
    settings = {"rate_limit_submissions": 2, "rate_limit_requests": 3, "rate_limit_window_s": 3600}
    with running_gateway(tmp_path, redis_url, **settings) as limited, limited.client() as client:
        assert submit(client, person_png, garment_png).status_code == 202
        job = submit(client, person_png, garment_png).json()
        reply = submit(client, person_png, garment_png)
        assert_problem(reply, 429, kind="rate-limited")
        assert 1 <= int(reply.headers["retry-after"]) <= 3600
        for _ in range(3):
            assert client.get(job["status_url"]).status_code == 200
        reply = client.get(job["status_url"])
        assert_problem(reply, 429, kind="rate-limited")
        assert int(reply.headers["retry-after"]) >= 1
        assert client.get("/api/health").status_code == 200  # probes are never limited


def test_api_keys_when_configured(
    tmp_path: Path, redis_url: str, person_png: bytes, garment_png: bytes
) -> None:
    with (
        running_gateway(tmp_path, redis_url, api_keys="first-key, second-key") as keyed,
        keyed.client() as client,
    ):
        reply = submit(client, person_png, garment_png)
        assert_problem(reply, 401, kind="api-key-required")
        assert reply.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post(
            "/api/tryon", files=photos(person_png, garment_png), headers={"X-API-Key": "nope"}
        )
        assert_problem(wrong, 401, kind="api-key-invalid")
        ok = client.post(
            "/api/tryon", files=photos(person_png, garment_png), headers={"X-API-Key": "second-key"}
        )
        assert ok.status_code == 202
        status_url = ok.headers["location"]
        assert_problem(client.get(status_url), 401)
        assert client.get(status_url, headers={"Authorization": "Bearer first-key"}).status_code == 200
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/limits").json()["api_key_required"] is True


def test_cors_only_for_configured_origins(tmp_path: Path, redis_url: str) -> None:
    with (
        running_gateway(tmp_path, redis_url, cors_origins="https://shop.example") as cors,
        cors.client() as client,
    ):
        preflight = client.options(
            "/api/tryon",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        reply = client.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in reply.headers


def test_security_headers_page_and_openapi(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and "Try it on" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert (
            client.get("/app.js")
            .headers["content-type"]
            .startswith(("text/javascript", "application/javascript"))
        )
        docs = client.get("/api/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()

        spec = client.get("/api/openapi.json").json()
        paths = spec["paths"]
        assert {
            "/api/tryon",
            "/api/tryon/{job_id}",
            "/api/tryon/{job_id}/events",
            "/api/health",
            "/api/ready",
        } <= set(paths)
        submit_op = paths["/api/tryon"]["post"]
        assert {"202", "413", "415", "422", "429", "503"} <= set(submit_op["responses"])
        body = submit_op["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert body["required"] == ["garment"] and body["additionalProperties"] is False
        assert body["oneOf"] == [{"required": ["person"]}, {"required": ["person_from"]}]
        assert all(prop.get("description") for prop in body["properties"].values())
        for name, prop in spec["components"]["schemas"]["JobDocument"]["properties"].items():
            assert prop.get("description") or name in {"created_at", "updated_at"}, name
        assert (
            "application/problem+json" in paths["/api/tryon/{job_id}"]["get"]["responses"]["404"]["content"]
        )


def test_metrics_count_requests_by_route(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        client.get("/api/tryon/whatever1")
        text = client.get("/metrics").text
    assert 'tryon_gateway_requests_total{method="GET",route="/api/tryon/{job_id}",status="404"}' in text
    assert "tryon_gateway_queue_depth" in text
    assert "whatever1" not in text


def test_examples_are_served(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        person = client.get("/api/examples/person.png")
        garment = client.get("/api/examples/garment.png", params={"category": "upper_body"})
    assert person.headers["content-type"] == garment.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(person.content)).size == (512, 512)
    assert Image.open(io.BytesIO(garment.content)).size == (768, 1024)


def test_an_interrupted_upload_is_a_client_error(gateway: RunningGateway) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/tryon HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 100000\r\n\r\n"
            b'--x\r\nContent-Disposition: form-data; name="person"; filename="a"\r\n\r\n'
        )
    metric = 'tryon_gateway_requests_total{method="POST",route="/api/tryon",status="400"}'
    deadline = time.monotonic() + 10
    with gateway.client() as client:
        while metric not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the interrupted upload was not answered as a 400"
            time.sleep(0.05)


def test_person_from_reuses_an_earlier_jobs_photo(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    storage = gateway.context.storage
    other_garment = encode(draw_garment(color=(30, 90, 200), size=(384, 512)))
    with gateway.client() as client:
        first = submit(client, person_png, garment_png).json()
        files = {"garment": ("g.png", other_garment, "image/png")}
        second = client.post("/api/tryon", files=files, data={"person_from": first["id"]})
        assert second.status_code == 202, second.text
        job = second.json()
        assert job["id"] != first["id"]
        assert storage.get(input_key(job["id"], "person")) == storage.get(input_key(first["id"], "person"))
        assert storage.get(input_key(job["id"], "garment")) != storage.get(input_key(first["id"], "garment"))

        both = client.post(
            "/api/tryon", files=photos(person_png, garment_png), data={"person_from": first["id"]}
        )
        assert_problem(both, 422, field="person_from")
        assert_problem(client.post("/api/tryon", files=files), 422, field="person")
        # The earlier job's photo is gone once it is deleted: the caller must upload it again.
        assert client.delete(first["status_url"]).status_code == 204
        gone = client.post("/api/tryon", files=files, data={"person_from": first["id"]})
        body = assert_problem(gone, 422, field="person_from", kind="person-from-gone")
        assert "send the person photo again" in body["detail"]
        # Deleting the first job leaves the second one's copy alone.
        assert storage.exists(input_key(job["id"], "person"))


def test_a_clean_up_that_redis_refuses_is_retried_in_the_background() -> None:
    """Releasing an Idempotency-Key or deleting an unqueued job while Redis restarts: the request is answered
    at once and the clean-up lands once Redis is back (else the key stays pending and retries get 409)."""
    import asyncio

    import redis as redis_client

    from gateway.routes.tryon import _until_done

    attempts: list[float] = []

    async def flaky_release() -> None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise redis_client.ConnectionError("Connection closed by server.")

    class Background:
        def __init__(self) -> None:
            self.tasks: set[asyncio.Future[None]] = set()

        def spawn(self, coroutine) -> None:  # type: ignore[no-untyped-def]
            self.tasks.add(asyncio.ensure_future(coroutine))

    async def scenario() -> None:
        background = Background()
        await _until_done(background, "releasing a key", flaky_release)  # type: ignore[arg-type]
        assert len(attempts) == 1  # answered at once; the rest happens in the background
        await asyncio.wait_for(asyncio.gather(*background.tasks), timeout=10)

    asyncio.run(scenario())
    assert len(attempts) == 3
