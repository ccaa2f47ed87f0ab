"""gRPC overhead: each stage in process vs over gRPC (real subprocess services on loopback), lite backends.

    .venv/bin/python bench/bench_grpc_overhead.py                                  # synthetic inputs
    .venv/bin/python bench/bench_grpc_overhead.py --samples ../shared/samples --runs 5 --person-analysis

All paths run the same backends on the same 1024 px inputs; the difference is encoding, transport,
decoding and, for the chain, one more thing: in process, segmentation and pose share one MediaPipe pose
detection (tryon's lite stages cache it per image), which separate services cannot. Two wire forms are
timed side by side: v1 (``ClientSettings(wire_version=1)``: full-frame images, as before issue 14) and v2
(the default: keypoints instead of the pose image, 1-bit masks, a deflated label map, bounding-box patches).

* Per stage: each stage alone, on inputs made by an in-process run, alternating pairs so no call hits the
  one-entry landmark cache of the previous one; the median of ``--runs`` rounds, with the bytes each call
  moves (request + response).
* Chain: the whole TryOnPipeline with in-process backends vs with the gRPC clients (``remote_backends``).

All paths are measured in the same run, interleaved, so machine noise hits them alike. Every process (this
one, which holds the in-process pipeline and the clients, and the services) keeps freed memory for reuse
(tryon/memory.py). Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from tryon.backends import create_backend
from tryon.client import ClientSettings, StageClient, remote_backends
from tryon.local_services import running_services
from tryon.memory import retain_freed_memory
from tryon.pipeline import TryOnPipeline, load_image
from tryon.settings import StageSettings
from tryon.types import (
    STAGES,
    BackendKind,
    BlendInput,
    InpaintInput,
    PoseInput,
    SegmentationInput,
    WarpInput,
)

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.25
GOAL_RATIO = 1.10
#: The two request/response forms compared: name -> ClientSettings.wire_version.
WIRES = {"v1": 1, "v2": 2}

Pair = tuple[np.ndarray, np.ndarray]  # person RGB, garment RGB(A)


def sample_pairs(samples: Path) -> list[Pair]:
    persons = sorted(p for p in (samples / "person").iterdir() if p.suffix.lower() in {".jpg", ".png"})
    garments = sorted(p for p in (samples / "garment").iterdir() if p.suffix.lower() in {".jpg", ".png"})
    if not persons or not garments:
        raise SystemExit(f"no person/ and garment/ photos under {samples}")
    return [
        (load_image(person, field="person"), load_image(garments[i % len(garments)], field="garment"))
        for i, person in enumerate(persons)
    ]


def synthetic_pairs() -> list[Pair]:
    """The test suite's images: skimage's astronaut (and her mirror image) with drawn flat-lay garments."""
    sys.path.insert(0, str(REPO))
    from tests.imagegen import draw_garment, person_photo

    person = person_photo(1024)
    return [
        (person, draw_garment(color=(200, 30, 30))),
        (np.ascontiguousarray(person[:, ::-1]), draw_garment(color=(40, 90, 200))),
    ]


class WireBytes(grpc.UnaryUnaryClientInterceptor):
    """Counts the serialized bytes of each call (request + response)."""

    def __init__(self) -> None:
        self.last = 0
        self.last_request = 0

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        outcome = continuation(client_call_details, request)
        self.last_request = request.ByteSize()
        self.last = self.last_request + outcome.result().ByteSize()
        return outcome


def stage_inputs(pipeline: TryOnPipeline, pair: Pair) -> dict[str, object]:
    """Each stage's input for one pair, from an in-process run (the pipeline's own preprocessing)."""
    result = pipeline.run(*pair)
    person, segmentation, pose = result.person, result.segmentation, result.pose
    return {
        "segmentation": SegmentationInput(person=person),
        "pose": PoseInput(person=person),
        "warp": WarpInput(
            garment=pair[1], keypoints=pose.keypoints, target_size=person.shape[:2],
        ),
        "inpaint": InpaintInput(
            person=person, clothing_mask=segmentation.clothing_mask,
            warped_garment=result.warp.warped_garment, pose_image=pose.pose_image, keypoints=pose.keypoints,
        ),
        "blend": BlendInput(
            person=person, generated=result.inpaint.image, clothing_mask=segmentation.clothing_mask,
            face_mask=segmentation.face_mask,
        ),
    }  # fmt: skip


@contextmanager
def person_analysis(enabled: bool) -> Iterator[str | None]:
    """The address of bench/person_analysis.py (segmentation + pose in one process) while it runs."""
    if not enabled:
        yield None
        return
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "person_analysis.py")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit(f"bench/person_analysis.py did not start: {line!r}")
        yield f"127.0.0.1:{line.split()[1]}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def timed(run: Callable[[Any], object], argument: object) -> float:
    started = time.perf_counter()
    run(argument)
    return time.perf_counter() - started


def process_memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, help="a folder with person/ and garment/ photos")
    parser.add_argument("--runs", type=int, default=5, help="rounds over all pairs (default 5)")
    parser.add_argument("--wire", choices=["raw", "png"], default="raw", help="image encoding between hops")
    parser.add_argument(
        "--person-analysis",
        action="store_true",
        help="also time the v2 chain with segmentation + pose in one process (bench/person_analysis.py)",
    )
    args = parser.parse_args()

    # The services keep freed memory for reuse (tryon/service_main.py); so does this process, which holds
    # both the in-process pipeline and the clients, so both sides of the comparison allocate alike.
    retain_freed_memory()
    pairs = sample_pairs(args.samples) if args.samples else synthetic_pairs()
    settings = StageSettings(backend=BackendKind.LITE)
    local = {stage: create_backend(stage, settings) for stage in STAGES}
    local_pipeline = TryOnPipeline(local)
    local_pipeline.setup()
    inputs = [stage_inputs(local_pipeline, pair) for pair in pairs]

    paths = ("local", *WIRES, *(["v2-pa"] if args.person_analysis else []))
    stage_times: dict[str, dict[str, list[float]]] = {s: {p: [] for p in paths} for s in STAGES}
    chain_times: dict[str, list[float]] = {p: [] for p in paths}
    in_chain: dict[str, dict[str, list[float]]] = {s: {p: [] for p in paths} for s in STAGES}
    wire_bytes: dict[str, dict[str, list[int]]] = {s: {w: [] for w in WIRES} for s in STAGES}
    request_bytes: dict[str, dict[str, list[int]]] = {s: {w: [] for w in WIRES} for s in STAGES}
    with ExitStack() as running:
        # One set of services per wire form: each process sees the pairs in turn, so none serves a photo
        # from the segmentation / pose landmark cache that another path's call has just filled.
        services = {wire: running.enter_context(running_services(STAGES)) for wire in WIRES}
        combined = running.enter_context(person_analysis(args.person_analysis))
        clients: dict[str, dict[str, StageClient[Any, Any]]] = {}
        recorders: dict[str, WireBytes] = {}
        pipelines: dict[str, TryOnPipeline] = {"local": local_pipeline}
        for wire, version in WIRES.items():
            addresses = {f"{stage}_addr": service.address for stage, service in services[wire].items()}
            clients[wire] = remote_backends(
                ClientSettings(wire_format=args.wire, wire_version=version, **addresses)
            )
            recorders[wire] = WireBytes()
            for client in clients[wire].values():
                client.setup()
                client.stub = client.stub_class(grpc.intercept_channel(client.channel, recorders[wire]))
            pipelines[wire] = TryOnPipeline(clients[wire])
        if combined:
            # warp, inpaint and blend: v2's services (they hold no per-photo cache)
            pa_settings = ClientSettings(
                **{**addresses, "segmentation_addr": combined, "pose_addr": combined}, wire_format=args.wire
            )
            clients["v2-pa"] = remote_backends(pa_settings)
            for client in clients["v2-pa"].values():
                client.setup()
            pipelines["v2-pa"] = TryOnPipeline(clients["v2-pa"])
        for pair in pairs:  # warm-up: first calls allocate buffers, open connections
            for pipeline in pipelines.values():
                pipeline.run(*pair)

        for _ in range(args.runs):
            for stage in STAGES:
                for pair_inputs in inputs:
                    stage_times[stage]["local"].append(timed(local[stage].run, pair_inputs[stage]))
                    for wire in WIRES:
                        stage_times[stage][wire].append(timed(clients[wire][stage].run, pair_inputs[stage]))
                        wire_bytes[stage][wire].append(recorders[wire].last)
                        request_bytes[stage][wire].append(recorders[wire].last_request)
            for pair in pairs:
                for path, pipeline in pipelines.items():
                    timings = pipeline.run(*pair).timings
                    chain_times[path].append(timings["total"])
                    for stage in STAGES:
                        in_chain[stage][path].append(timings[stage])
        memory = {stage: process_memory_mb(service.process.pid) for stage, service in services["v2"].items()}
        for path_clients in clients.values():
            for client in path_clients.values():
                client.close()
    for pipeline in pipelines.values():
        pipeline.close()

    source = args.samples or "synthetic (tests/imagegen.py)"
    print(f"inputs: {len(pairs)} pairs from {source}, 1024 px long side; {args.runs} runs; wire: {args.wire}")
    print(f"machine: {os.cpu_count()} CPUs; lite backends; services on loopback")
    print(
        "v1: full-frame images (the wire before issue 14); v2: keypoints, bitmasks, patches (the default)\n"
    )
    print("| stage | in-process ms | v1 gRPC ms | v1 MB/call | v2 gRPC ms | v2 MB/call | v2 MB request + "
          "response | v2 +ms | v2 ratio |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for stage in STAGES:
        here = statistics.median(stage_times[stage]["local"]) * 1000
        v1, v2 = (statistics.median(stage_times[stage][w]) * 1000 for w in WIRES)
        mb1, mb2 = (statistics.median(wire_bytes[stage][w]) / 1e6 for w in WIRES)
        request_mb = statistics.median(request_bytes[stage]["v2"]) / 1e6
        print(f"| {stage} | {here:.1f} | {v1:.1f} | {mb1:.2f} | {v2:.1f} | {mb2:.2f} | {request_mb:.2f} + "
              f"{mb2 - request_mb:.2f} | {v2 - here:+.1f} | {v2 / here:.2f}x |")  # fmt: skip
    here = statistics.median(chain_times["local"]) * 1000
    v1, v2 = (statistics.median(chain_times[w]) * 1000 for w in WIRES)
    mb1, mb2 = (sum(statistics.median(wire_bytes[s][w]) for s in STAGES) / 1e6 for w in WIRES)
    print(f"| **chain** | {here:.1f} | {v1:.1f} ({v1 / here:.2f}x) | {mb1:.2f} | {v2:.1f} | {mb2:.2f} | | "
          f"{v2 - here:+.1f} | **{v2 / here:.2f}x** |")  # fmt: skip
    if args.person_analysis:
        combined_ms = statistics.median(chain_times["v2-pa"]) * 1000
        print(f"| chain, segmentation + pose in one process | | | | {combined_ms:.1f} | | | "
              f"{combined_ms - here:+.1f} | {combined_ms / here:.2f}x |")  # fmt: skip
    retained = (
        "kept for reuse"
        if StageSettings().retain_freed_memory
        else "returned (TRYON_RETAIN_FREED_MEMORY=false)"
    )
    print(f"\nv2 services' memory after the runs (freed memory {retained}):\n")
    print("| stage | RSS MB | peak RSS MB |")
    print("|---|---:|---:|")
    for stage, (rss, peak) in memory.items():
        print(f"| {stage} | {rss:.0f} | {peak:.0f} |")
    print("\nInside the chain (median ms per stage; segmentation and pose run concurrently):\n")
    print("| stage | " + " | ".join(paths) + " |")
    print("|---|" + "---:|" * len(paths))
    for stage in STAGES:
        row = " | ".join(f"{statistics.median(in_chain[stage][p]) * 1000:.1f}" for p in paths)
        print(f"| {stage} | {row} |")
    ratio = v2 / here
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(
        f"\nchain (v2) {ratio:.2f}x the in-process pipeline: {verdict} the {TARGET_RATIO:.2f}x target", end=""
    )
    print(f" (goal {GOAL_RATIO:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
