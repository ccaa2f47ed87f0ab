"""gRPC overhead: each stage in process vs over gRPC (real subprocess services on loopback), lite backends.

    .venv/bin/python bench/bench_grpc_overhead.py --samples ../shared/samples --runs 5

Both paths run the same backends on the same inputs; the difference is encoding, transport and decoding
(PNG images both ways). Reports medians per stage and the whole chain's ratio (target <= 1.10x). Both are
measured in the same run, interleaved, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from tryon.client import ClientSettings, remote_backends
from tryon.local_services import running_services
from tryon.pipeline import TryOnPipeline, load_image
from tryon.settings import StageSettings
from tryon.types import STAGES, BackendKind


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, default=Path("../shared/samples"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    persons = sorted((args.samples / "person").iterdir())
    garments = sorted((args.samples / "garment").iterdir())
    pairs = [
        (load_image(p, field="person"), load_image(g, field="garment", mode="RGBA"))
        for p, g in zip(persons, garments, strict=False)
    ]
    local = TryOnPipeline.from_settings(StageSettings(backend=BackendKind.LITE))
    local.setup()
    timings: dict[str, dict[str, list[float]]] = {
        "in-process": {s: [] for s in (*STAGES, "total")},
        "gRPC": {s: [] for s in (*STAGES, "total")},
    }
    with running_services(STAGES) as services:
        settings = ClientSettings(**{f"{stage}_addr": service.address for stage, service in services.items()})
        remote = TryOnPipeline(remote_backends(settings))
        remote.setup()
        for person, garment in pairs:  # warm-up
            local.run(person, garment)
            remote.run(person, garment)
        for _ in range(args.runs):
            for person, garment in pairs:
                for name, pipeline in (("in-process", local), ("gRPC", remote)):
                    for stage, seconds in pipeline.run(person, garment).timings.items():
                        timings[name][stage].append(seconds)
        remote.close()
    local.close()

    print(f"pairs: {len(pairs)}, runs per pair: {args.runs}")
    print("\n| stage | in-process median ms | gRPC median ms | ratio |")
    print("|---|---:|---:|---:|")
    for stage in (*STAGES, "total"):
        here = statistics.median(timings["in-process"][stage]) * 1000
        there = statistics.median(timings["gRPC"][stage]) * 1000
        print(f"| {stage} | {here:.1f} | {there:.1f} | {there / here:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
