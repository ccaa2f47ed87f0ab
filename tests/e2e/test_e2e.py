"""The product as its users meet it: the stack `make up` starts, through its front door (nginx when
installed): the page, a job submitted, followed over server-sent events and downloaded; one trace per job
and the job id in every process's logs."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e import api
from tests.tryon.observability.otlp_sink import OtlpSink
from tryon.localstack import LocalStack
from tryon.stages import STAGES

pytestmark = pytest.mark.e2e


def test_ready_in_under_30_s_with_page_and_api(stack: LocalStack, client: httpx.Client) -> None:
    assert stack.ready_after_s < 30, f"ready after {stack.ready_after_s:.1f} s"  # type: ignore[attr-defined]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<html" in page.text.lower()
    assert client.get("/api/ready").status_code == 200
    assert client.get("/api/health").status_code == 200
    if stack.config.nginx:
        assert page.headers.get("server", "").startswith("nginx")


def test_submit_follow_events_and_download(client: httpx.Client) -> None:
    submitted = api.submit(client)
    documents = list(api.follow_events(client, submitted.job_id))
    assert documents, "no events"
    statuses = [d["status"] for d in documents]
    assert statuses[-1] == "succeeded", documents[-1]
    progress = [d["progress"] for d in documents]
    assert progress == sorted(progress) and progress[-1] == 100
    final = documents[-1]
    assert final["result_url"] and final["download_url"]
    image = api.download(client, submitted.job_id)
    person = api.example_inputs()[0]
    width, height = Image.open(io.BytesIO(person)).size
    assert image.size[0] * height == image.size[1] * width  # the person's framing (at working resolution)
    # The signed result URL works through the front door too.
    signed = client.get(final["result_url"])
    assert signed.status_code == 200 and signed.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_trace_per_job_and_job_id_in_every_log(
    stack: LocalStack, client: httpx.Client, otlp_sink: OtlpSink
) -> None:
    job_id = api.submit(client).job_id
    assert api.wait_final(client, job_id)["status"] == "succeeded"
    services = {"gateway", "worker", *STAGES}

    def of_job(spans: list[dict]) -> list[dict]:
        return [s for s in spans if _attribute(s, "tryon.job_id") == job_id]

    def seen(spans: list[dict]) -> set[str]:
        return {name for s in of_job(spans) for name in services if s["service"].endswith(name)}

    def complete(spans: list[dict]) -> bool:
        # Each process exports in batches of its own, so a stage's server span can arrive before the
        # worker's client span it is the child of: wait until every parent named has come in.
        if seen(spans) != services:
            return False
        traces = {s["traceId"] for s in of_job(spans)}
        by_id = {s["spanId"] for s in spans}
        return all(
            not s.get("parentSpanId") or s["parentSpanId"] in by_id for s in spans if s["traceId"] in traces
        )

    spans = otlp_sink.wait_for(complete)
    job_spans = of_job(spans)
    assert seen(spans) == services, sorted({s["service"] for s in job_spans})
    # The trace starts at the submission (POST /api/tryon) and the publish span hands it to the worker;
    # every span of the worker and of the stages for this job is in it. (Later status reads and event
    # streams name the job too, but are requests of their own, each its own trace.)
    publish = [s for s in job_spans if s["name"].startswith("publish ")]
    assert len(publish) == 1, publish
    trace_id = publish[0]["traceId"]
    processing = [s for s in job_spans if not s["service"].endswith("gateway")]
    assert processing and {s["traceId"] for s in processing} == {trace_id}
    in_trace = {s["spanId"]: s for s in spans if s["traceId"] == trace_id}
    roots = [s for s in in_trace.values() if not s.get("parentSpanId")]
    assert [r["name"] for r in roots] == ["POST /api/tryon"], roots
    # Each stage's server span is the child of a worker's client span.
    for span in processing:
        if span["service"] in {f"tryon-{stage}" for stage in STAGES}:
            assert in_trace[span["parentSpanId"]]["service"].endswith("worker")

    time.sleep(0.5)  # log lines are flushed line by line; give the last ones a moment
    logs = Path(stack.config.run_dir) / "logs"
    for name in ("gateway", "worker", *STAGES):
        text = (logs / f"{name}.log").read_text(errors="replace")
        assert f"job={job_id}" in text or f'"job_id": "{job_id}"' in text, f"{name}.log never names {job_id}"


def _attribute(span: dict, key: str) -> str | None:
    for attribute in span.get("attributes", []):
        if attribute["key"] == key:
            return attribute["value"].get("stringValue")
    return None
