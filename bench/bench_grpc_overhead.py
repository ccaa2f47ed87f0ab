"""gRPC overhead: each stage in process vs over gRPC (real subprocess services on loopback), lite backends.

    .venv/bin/python bench/bench_grpc_overhead.py                                  # synthetic inputs
    .venv/bin/python bench/bench_grpc_overhead.py --samples ../shared/samples --runs 5

Both paths run the same backends on the same 1024 px inputs; the difference is encoding, transport,
decoding and, for the chain, one more thing: in process, segmentation and pose share one MediaPipe pose
detection (tryon's lite stages cache it per image), which separate services cannot.

* Per stage: each stage alone, on inputs made by an in-process run, alternating pairs so no call hits the
  one-entry landmark cache of the previous one; the median of ``--runs`` rounds, with the bytes each call
  moves (request + response).
* Chain: the whole TryOnPipeline with in-process backends vs with the gRPC clients (``remote_backends``).

Both paths are measured in the same run, interleaved, so machine noise hits both alike. Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from tryon.backends import create_backend
from tryon.client import ClientSettings, StageClient, remote_backends
from tryon.local_services import running_services
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
TARGET_RATIO = 1.10

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

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        outcome = continuation(client_call_details, request)
        self.last = request.ByteSize() + outcome.result().ByteSize()
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
            clothing_mask=segmentation.clothing_mask,
        ),
        "inpaint": InpaintInput(
            person=person, clothing_mask=segmentation.clothing_mask,
            warped_garment=result.warp.warped_garment, pose_image=pose.pose_image,
        ),
        "blend": BlendInput(
            person=person, generated=result.inpaint.image, clothing_mask=segmentation.clothing_mask,
            face_mask=segmentation.face_mask,
        ),
    }  # fmt: skip


def timed(run: Callable[[Any], object], argument: object) -> float:
    started = time.perf_counter()
    run(argument)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, help="a folder with person/ and garment/ photos")
    parser.add_argument("--runs", type=int, default=5, help="rounds over all pairs (default 5)")
    parser.add_argument("--wire", choices=["raw", "png"], default="raw", help="image encoding between hops")
    args = parser.parse_args()

    pairs = sample_pairs(args.samples) if args.samples else synthetic_pairs()
    settings = StageSettings(backend=BackendKind.LITE)
    local = {stage: create_backend(stage, settings) for stage in STAGES}
    local_pipeline = TryOnPipeline(local)
    local_pipeline.setup()
    inputs = [stage_inputs(local_pipeline, pair) for pair in pairs]

    stage_times: dict[str, dict[str, list[float]]] = {s: {"local": [], "grpc": []} for s in STAGES}
    chain_times: dict[str, list[float]] = {"local": [], "grpc": []}
    wire_bytes: dict[str, list[int]] = {s: [] for s in STAGES}
    with running_services(STAGES) as services:
        addresses = {f"{stage}_addr": service.address for stage, service in services.items()}
        clients: dict[str, StageClient[Any, Any]] = remote_backends(
            ClientSettings(wire_format=args.wire, **addresses)
        )
        recorder = WireBytes()
        for client in clients.values():
            client.setup()
            client.stub = client.stub_class(grpc.intercept_channel(client.channel, recorder))
        remote_pipeline = TryOnPipeline(clients)
        for pair in pairs:  # warm-up: first calls allocate buffers, open connections
            local_pipeline.run(*pair)
            remote_pipeline.run(*pair)

        for _ in range(args.runs):
            for stage in STAGES:
                for pair_inputs in inputs:
                    stage_times[stage]["local"].append(timed(local[stage].run, pair_inputs[stage]))
                    stage_times[stage]["grpc"].append(timed(clients[stage].run, pair_inputs[stage]))
                    wire_bytes[stage].append(recorder.last)
            for pair in pairs:
                chain_times["local"].append(local_pipeline.run(*pair).timings["total"])
                chain_times["grpc"].append(remote_pipeline.run(*pair).timings["total"])
        for client in clients.values():
            client.close()
    local_pipeline.close()
    remote_pipeline.close()

    source = args.samples or "synthetic (tests/imagegen.py)"
    print(f"inputs: {len(pairs)} pairs from {source}, 1024 px long side; {args.runs} runs; wire: {args.wire}")
    print(f"machine: {os.cpu_count()} CPUs; lite backends; services on loopback\n")
    print("| stage | in-process ms | gRPC ms | overhead ms | ratio | MB per call |")
    print("|---|---:|---:|---:|---:|---:|")
    for stage in STAGES:
        here = statistics.median(stage_times[stage]["local"]) * 1000
        there = statistics.median(stage_times[stage]["grpc"]) * 1000
        megabytes = statistics.median(wire_bytes[stage]) / 1e6
        overhead = f"{there - here:+.1f} | {there / here:.2f}x"
        print(f"| {stage} | {here:.1f} | {there:.1f} | {overhead} | {megabytes:.1f} |")
    here = statistics.median(chain_times["local"]) * 1000
    there = statistics.median(chain_times["grpc"]) * 1000
    ratio = there / here
    print(f"| **chain** | {here:.1f} | {there:.1f} | {there - here:+.1f} | **{ratio:.2f}x** | |")
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"\nchain overhead {ratio:.2f}x {verdict} the {TARGET_RATIO:.2f}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
