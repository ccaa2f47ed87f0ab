"""Segmentation and pose in one process: two gRPC services on one port, sharing one MediaPipe pass.

A measurement for ``bench_grpc_overhead.py --person-analysis`` of what a combined "person analysis"
deployment would save over two separate services; not a supported deployment. Prints ``PORT <n>``, then
serves until SIGTERM.

    .venv/bin/python bench/person_analysis.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.pose import servicer as pose_servicer
from services.segmentation import servicer as segmentation_servicer
from tryon.backends import create_backend
from tryon.memory import retain_freed_memory
from tryon.runtime import StageServer, configure_logging, serve
from tryon.settings import load_stage_settings
from tryon.types import BackendInfo, BackendKind


class PersonAnalysis:
    """Both backends behind one readiness: the lite ones share the process-wide MediaPipe landmarker,
    whose one-entry cache lets the second stage reuse the first one's detection of the same photo."""

    def __init__(self, segmentation: object, pose: object) -> None:
        self.segmentation = segmentation
        self.pose = pose

    def setup(self) -> None:
        self.segmentation.setup()  # type: ignore[attr-defined]
        self.pose.setup()  # type: ignore[attr-defined]

    def info(self) -> BackendInfo:
        return BackendInfo(stage="person-analysis", backend="lite", device="cpu")


def main() -> None:
    retain_freed_memory()  # as every stage service does (tryon/service_main.py)
    settings = load_stage_settings(host="127.0.0.1", backend=BackendKind.LITE)
    configure_logging(settings)
    segmentation = create_backend("segmentation", settings)
    pose = create_backend("pose", settings)
    server = StageServer(
        "person-analysis",
        PersonAnalysis(segmentation, pose),
        [segmentation_servicer.binding(segmentation), pose_servicer.binding(pose)],
        settings,
        port=0,
        max_concurrency=2,  # one call of each stage at a time, as two single-slot services would run
    )
    print(f"PORT {server.port}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
