"""Following a job: server-sent events, status with a signed result URL, download, the local file route.

The job's progress is written to its record the way the worker writes it (tryon.jobs.state), so these
tests pin what the gateway answers for each state without running the pipeline.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image

from tests.gateway.conftest import RunningGateway, encode, photos
from tests.imagegen import draw_garment
from tryon.jobs.state import JobStatus
from tryon.jobs.storage import result_key


def read_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event name, data) pairs of an SSE stream; comments and retry hints skipped."""
    name, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


def work(gateway: RunningGateway, job_id: str, result: bytes, pause: float = 0.15) -> None:
    """What a worker does to a job's record, with pauses so each change is its own event."""
    store = gateway.context.store
    time.sleep(pause)
    store.transition(job_id, JobStatus.RUNNING, count_attempt=True, stage="segmentation", progress=5)
    for stage, progress in [("pose", 20), ("warp", 40), ("inpaint", 70), ("blend", 90)]:
        time.sleep(pause)
        store.update_progress(job_id, stage=stage, progress=progress, timings={"segmentation": 0.5})
    gateway.context.storage.put(result_key(job_id), result, "image/png")
    time.sleep(pause)
    store.transition(job_id, JobStatus.SUCCEEDED, result_key=result_key(job_id), progress=100)


def test_events_follow_a_job_to_its_result(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    result = encode(draw_garment(size=(256, 320)))
    with gateway.client() as client:
        job = client.post("/api/tryon", files=photos(person_png, garment_png)).json()
        worker = threading.Thread(target=work, args=(gateway, job["id"], result))
        seen: list[dict] = []
        arrivals: list[float] = []
        with client.stream("GET", job["events_url"]) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache"
            worker.start()
            for name, data in read_events(stream):
                assert name == "status"
                seen.append(json.loads(data))
                arrivals.append(time.monotonic())
        worker.join()

        statuses = [event["status"] for event in seen]
        assert statuses[0] == "queued" and statuses[-1] == "succeeded"
        stages = [event["stage"] for event in seen if event["status"] == "running"]
        # Changes close together may arrive as one event (each event is the newest document), so on a
        # loaded machine a stage can be skipped; the order never changes.
        order = ["segmentation", "pose", "warp", "inpaint", "blend"]
        assert len(stages) >= 3 and stages == sorted(stages, key=order.index), stages
        progress = [event["progress"] for event in seen]
        assert progress == sorted(progress) and progress[-1] == 100
        assert arrivals[-1] - arrivals[0] > 0.5  # events came as they happened, not in one batch at the end

        final = seen[-1]
        assert final["timings"]["segmentation"] == 0.5
        assert final["download_url"] == f"/api/tryon/{job['id']}/result"
        # The signed local URL serves the result until it expires.
        status = client.get(job["status_url"]).json()
        assert status["result_url"].startswith("/api/files/")
        fetched = client.get(status["result_url"])
        assert fetched.status_code == 200 and fetched.content == result
        assert fetched.headers["content-type"] == "image/png"
        expires = status["result_expires_at"]
        assert expires is not None
        query = parse_qs(urlsplit(status["result_url"]).query)
        assert int(query["expires"][0]) - time.time() > gateway.settings.url_expiry_s - 60

        download = client.get(status["download_url"])
        assert download.status_code == 200 and download.content == result
        assert download.headers["content-disposition"] == f'attachment; filename="tryon-{job["id"]}.png"'
        assert Image.open(io.BytesIO(download.content)).size == (256, 320)

        # A finished job's stream sends the final document and ends.
        with client.stream("GET", job["events_url"]) as stream:
            assert [json.loads(data)["status"] for _, data in read_events(stream)] == ["succeeded"]


def test_signed_file_urls_refuse_tampering_and_expiry(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    with gateway.client() as client:
        job = client.post("/api/tryon", files=photos(person_png, garment_png)).json()
        storage = gateway.context.storage
        key = f"{job['id']}/inputs/person.png"
        good = storage.url(key, 60)
        assert client.get(good).status_code == 200
        parts = urlsplit(good)
        query = parse_qs(parts.query)
        tampered = f"{parts.path}?expires={int(query['expires'][0]) + 1000}&signature={query['signature'][0]}"
        for url in (
            tampered, storage.url(key, -5), f"{parts.path}?expires=1&signature=00", parts.path,
            f"{parts.path}?expires={query['expires'][0]}&signature=%C3%A9t%C3%A9",  # non-ASCII: was a 500
        ):  # fmt: skip
            reply = client.get(url)
            assert reply.status_code in (403, 422), url
            assert reply.headers["content-type"] == "application/problem+json"
        other = storage.url(f"{job['id']}/inputs/garment.png", 60)
        assert client.get(other.replace("garment", "person")).status_code == 403


def test_events_for_a_failed_job_carry_the_error(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    store = gateway.context.store
    with gateway.client() as client:
        job = client.post("/api/tryon", files=photos(person_png, garment_png)).json()
        store.transition(job["id"], JobStatus.RUNNING, count_attempt=True, stage="pose")
        store.transition(
            job["id"], JobStatus.FAILED, error_code="invalid_input", error_message="pose: no person found"
        )
        with client.stream("GET", job["events_url"]) as stream:
            events = [json.loads(data) for _, data in read_events(stream)]
        assert events[-1]["status"] == "failed"
        assert events[-1]["error"] == {"code": "invalid_input", "message": "pose: no person found"}
        assert events[-1]["result_url"] is None
        status = client.get(job["status_url"]).json()
        assert status["error"]["code"] == "invalid_input"


def test_deleting_a_followed_job_ends_its_stream(
    gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    with gateway.client() as client:
        job = client.post("/api/tryon", files=photos(person_png, garment_png)).json()

        def delete_later() -> None:
            time.sleep(0.3)
            with gateway.client() as other:
                assert other.delete(job["status_url"]).status_code == 204

        deleter = threading.Thread(target=delete_later)
        with client.stream("GET", job["events_url"]) as stream:
            deleter.start()
            events = list(read_events(stream))
        deleter.join()
        names = [name for name, _ in events]
        # The delete cancels first (a "cancelled" status) and then removes the record.
        assert names[0] == "status" and json.loads(events[0][1])["status"] == "queued"
        assert json.loads(events[-1][1])["status"] in ("cancelled", "gone")
        assert client.get(job["events_url"]).status_code == 404


def test_keepalive_comments_on_a_quiet_stream(
    tmp_path_factory, redis_url: str, person_png: bytes, garment_png: bytes
) -> None:  # type: ignore[no-untyped-def]
    from tests.gateway.conftest import running_gateway

    with (
        running_gateway(
            tmp_path_factory.mktemp("sse"), redis_url, sse_keepalive_s=0.2, sse_max_duration_s=1.0
        ) as quiet,
        quiet.client() as client,
    ):
        job = client.post("/api/tryon", files=photos(person_png, garment_png)).json()
        started = time.monotonic()
        with client.stream("GET", job["events_url"]) as stream:
            lines = list(stream.iter_lines())
        assert lines.count(": keep-alive") >= 2
        assert 0.9 < time.monotonic() - started < 5  # ends after sse_max_duration_s; the page reconnects
