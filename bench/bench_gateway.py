"""Gateway throughput and latency on loopback: status polls per second, and submission latency.

    .venv/bin/python bench/bench_gateway.py                       # 2 Uvicorn workers, 20 s of polling
    .venv/bin/python bench/bench_gateway.py --workers 1 --poll-seconds 10 --connections 32

Starts a throw-away redis-server and the real gateway (``python -m gateway``: Uvicorn, uvloop, httptools)
as subprocesses, local storage in a temp dir, limits off. Then:

* Submissions: ``--submissions`` sequential POST /api/tryon with the built-in example photos (512x512 person,
  768x1024 garment, PNG, ~1.4 MB together), each timed from the first byte sent to the answer; on loopback
  the transfer itself is well under a millisecond per MB, so this is the gateway's own work (parse,
  decode, re-encode, store, create the record, enqueue). No worker runs: jobs stay queued.
* Polls: ``--connections`` keep-alive connections each sending GET /api/tryon/{id} back to back for
  ``--poll-seconds``. The load generator is a minimal asyncio HTTP/1.1 client in this process (httpx
  would cost more CPU than the server); on a 2-core machine it competes with the server for the cores, so
  the figure is a lower bound.

Prints markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tryon import demo, imaging
from tryon.local_services import REPO, free_port

POLL_TARGET = 1000.0
SUBMIT_P99_TARGET_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"redis://127.0.0.1:{port}/0"


def start_gateway(redis_url: str, storage: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TRYON_HOST": "127.0.0.1",
        "TRYON_PORT": str(port),
        "TRYON_WORKERS": str(workers),
        "TRYON_REDIS_URL": redis_url,
        "TRYON_STORAGE_DIR": str(storage),
        "TRYON_QUEUE_NAME": f"bench-{uuid.uuid4().hex[:6]}",
        "TRYON_RATE_LIMIT_REQUESTS": "0",
        "TRYON_RATE_LIMIT_SUBMISSIONS": "0",
        "TRYON_MAX_QUEUE_DEPTH": "0",
        "TRYON_SERVE_FRONTEND": "false",
        "TRYON_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit("the gateway exited at start-up")
        time.sleep(0.2)
    raise SystemExit("the gateway did not become ready")


def bench_submissions(url: str, count: int) -> tuple[list[float], str]:
    person = imaging.encode_png(demo.example_person(), compression=6)
    garment = imaging.encode_png(demo.example_garment(), compression=6)
    files = {"person": ("person.png", person, "image/png"), "garment": ("garment.png", garment, "image/png")}
    times: list[float] = []
    job_id = ""
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(count + 5):
            start = time.perf_counter()
            reply = client.post("/api/tryon", files=files, data={"seed": str(index)})
            elapsed = (time.perf_counter() - start) * 1000
            if reply.status_code != 202:
                raise SystemExit(f"submission answered {reply.status_code}: {reply.text}")
            job_id = reply.json()["id"]
            if index >= 5:  # warm-up excluded
                times.append(elapsed)
    print(f"submission bodies: {(len(person) + len(garment)) / 1e6:.2f} MB", file=sys.stderr)
    return times, job_id


async def _poller(host: str, port: int, path: str, stop_at: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode()
    count = 0
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - start) * 1000)
            count += 1
    finally:
        writer.close()
    return count


async def bench_polls(url: str, job_id: str, connections: int, seconds: float) -> tuple[float, list[float]]:
    host, port = url.removeprefix("http://").split(":")
    path = f"/api/tryon/{job_id}"
    latencies: list[float] = []
    warm_up = time.perf_counter() + 2
    await asyncio.gather(*(_poller(host, int(port), path, warm_up, []) for _ in range(connections)))
    start = time.perf_counter()
    counts = await asyncio.gather(
        *(_poller(host, int(port), path, start + seconds, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="Uvicorn worker processes (default 2)")
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tryon-bench-gateway-"))
    redis, redis_url = start_redis(scratch)
    gateway = None
    try:
        gateway, url = start_gateway(redis_url, scratch / "storage", args.workers)
        submit_ms, job_id = bench_submissions(url, args.submissions)
        rate, poll_ms = asyncio.run(bench_polls(url, job_id, args.connections, args.poll_seconds))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"gateway: {args.workers} Uvicorn worker(s), uvloop + httptools; {os.cpu_count()} CPUs\n")
    print("| measure | value | target |")
    print("|---|---:|---:|")
    print(f"| status polls per second ({args.connections} connections, {args.poll_seconds:.0f} s) "
          f"| **{rate:,.0f}** | >= {POLL_TARGET:,.0f} |")  # fmt: skip
    print(f"| poll latency p50 / p99 ms | {percentile(poll_ms, 50):.1f} / {percentile(poll_ms, 99):.1f} | |")
    print(f"| submission latency p50 ms ({len(submit_ms)} sequential) | {percentile(submit_ms, 50):.1f} | |")
    print(
        f"| submission latency p99 ms | **{percentile(submit_ms, 99):.1f}** | <= {SUBMIT_P99_TARGET_MS:.0f} |"
    )
    print(f"| submission latency mean ms | {statistics.fmean(submit_ms):.1f} | |")


if __name__ == "__main__":
    main()
