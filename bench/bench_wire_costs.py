"""What one hop's bytes cost besides the stage's work: the measurements behind issue 14's second pass.

    .venv/bin/python bench/bench_wire_costs.py                                # synthetic images
    .venv/bin/python bench/bench_wire_costs.py --samples ../shared/samples    # photos

Each line is the median of ``--runs`` repetitions, CPU time of this process (so less sensitive to other
load than wall time) except the gRPC echo, which is wall time on loopback:

* allocator: filling a fresh 2.4 MB buffer (one 1024 x 768 RGB image) with glibc's defaults and with
  freed memory retained (tryon/memory.py), each in a fresh subprocess;
* gRPC: a 4 MB request and a 4 MB reply through a bare echo service on loopback (client and server in
  one subprocess), with both allocator settings;
* protobuf (upb): a 2.4 MB image put into a request by the constructor and by ``CopyFrom``;
* numpy: a raw RGBA frame split and re-stacked (np.dstack, the old decoding) against one copy; a 1 MB
  crop to bytes with ``tobytes`` alone and after ``ascontiguousarray``;
* compression: raw against zlib level 1 for the dense images of a try-on (photos and patches).

Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tryon import protocol  # noqa: E402
from tryon.v1 import blend_pb2, common_pb2  # noqa: E402

#: A subprocess: fill a fresh 2.4 MB buffer 30 times (two blocks per round, freed at once); median ms.
_FRESH_BUFFER = """
import statistics, sys, time
from tryon.memory import retain_freed_memory
if sys.argv[1] == "retained":
    retain_freed_memory()
image = bytes(range(256)) * (1024 * 768 * 3 // 256)
times = []
for _ in range(30):
    started = time.process_time()
    copy = bytes(bytearray(image))
    times.append(time.process_time() - started)
    del copy
print(statistics.median(times) * 1000)
"""

#: A subprocess: a bare gRPC echo on loopback; median wall ms of a 4 MB request and of a 4 MB reply.
_ECHO = """
import statistics, sys, time
from concurrent import futures
import grpc
from tryon.memory import retain_freed_memory
if sys.argv[1] == "retained":
    retain_freed_memory()
limit = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
def echo(request, context):
    return bytes(int.from_bytes(request[:4], "little")) or b"ok"
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=limit)
handler = grpc.unary_unary_rpc_method_handler(echo)
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("echo.Echo", {"Call": handler}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
call = grpc.insecure_channel(f"127.0.0.1:{port}", options=limit).unary_unary("/echo.Echo/Call")
size = 4_000_000
big_request = (0).to_bytes(4, "little") + bytes(range(256)) * (size // 256)
big_reply = size.to_bytes(4, "little")
results = []
for payload in (big_request, big_reply):
    times = []
    for round in range(25):
        started = time.perf_counter()
        call(payload)
        if round >= 5:
            times.append(time.perf_counter() - started)
    results.append(statistics.median(times) * 1000)
print(*results)
server.stop(0)
"""


def _subprocess(code: str, *args: str) -> list[float]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return [float(value) for value in result.stdout.split()]


def cpu_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def dense_images(samples: Path | None) -> dict[str, np.ndarray]:
    """A person photo, a garment photo, a warped garment's patch and an inpainted patch, as a try-on
    makes them (lite backends, in process)."""
    from bench.bench_grpc_overhead import sample_pairs, synthetic_pairs
    from tryon.backends import create_backend
    from tryon.pipeline import TryOnPipeline
    from tryon.settings import StageSettings
    from tryon.types import STAGES, BackendKind

    person, garment = (sample_pairs(samples) if samples else synthetic_pairs())[0]
    settings = StageSettings(backend=BackendKind.LITE)
    pipeline = TryOnPipeline({stage: create_backend(stage, settings) for stage in STAGES})
    pipeline.setup()
    result = pipeline.run(person, garment)
    pipeline.close()
    warped = result.warp.warped_garment
    warped_rows, warped_cols = protocol.changed_box(warped, None)
    rows, cols = protocol.changed_box(result.inpaint.image, result.person)
    return {
        "person photo (RGB)": result.person,
        "garment photo (RGB)": garment,
        "warped garment patch (RGBA)": warped[warped_rows, warped_cols],
        "inpainted patch (RGB)": result.inpaint.image[rows, cols],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, help="a folder with person/ and garment/ photos")
    parser.add_argument("--runs", type=int, default=30, help="repetitions per measurement (default 30)")
    args = parser.parse_args()

    from tryon.memory import retain_freed_memory

    print("| what | glibc defaults | freed memory retained |")
    print("|---|---:|---:|")
    fresh = {mode: _subprocess(_FRESH_BUFFER, mode)[0] for mode in ("default", "retained")}
    print(f"| fill a fresh 2.4 MB buffer, CPU ms | {fresh['default']:.2f} | {fresh['retained']:.2f} |")
    echo = {mode: _subprocess(_ECHO, mode) for mode in ("default", "retained")}
    for index, what in enumerate(("request", "reply")):
        print(
            f"| gRPC echo on loopback, 4 MB {what}, wall ms | {echo['default'][index]:.2f} | "
            f"{echo['retained'][index]:.2f} |"
        )

    retain_freed_memory()  # as the services and the overhead bench run
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1024, 768, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (1024, 768, 4), dtype=np.uint8)
    image = protocol.image_to_proto(rgb, "raw")
    crop = rgba[100:900, 100:420]  # ~1 MB, a strided view as a patch is cut
    print("\n| step (process CPU ms, freed memory retained) | before | after |")
    print("|---|---:|---:|")
    before = cpu_ms(lambda: blend_pb2.BlendRequest(person=image), args.runs)
    after = cpu_ms(lambda: protocol.build(blend_pb2.BlendRequest, person=image), args.runs)
    print(
        "| 2.4 MB image into a request: constructor / `CopyFrom` (protocol.build) | "
        f"{before:.2f} | {after:.2f} |"
    )
    before = cpu_ms(lambda: np.dstack([rgba[..., :3], rgba[..., 3]]), args.runs)
    after = cpu_ms(lambda: rgba.copy(), args.runs)
    print(f"| raw RGBA frame decoded: np.dstack / one copy | {before:.2f} | {after:.2f} |")
    before = cpu_ms(lambda: crop.tobytes(), args.runs)
    after = cpu_ms(lambda: np.ascontiguousarray(crop).tobytes(), args.runs)
    print(f"| 1 MB crop to bytes: `tobytes` / `ascontiguousarray` first | {before:.2f} | {after:.2f} |")
    message = common_pb2.Image(data=rgb.tobytes())
    read = cpu_ms(lambda: message.data, args.runs)
    print(f"| one read of a 2.4 MB bytes field (upb copies it) | {read:.2f} | |")

    print("\n| image | raw MB | zlib level 1 MB | compress CPU ms | decompress CPU ms |")
    print("|---|---:|---:|---:|---:|")
    for name, pixels in dense_images(args.samples).items():
        raw = np.ascontiguousarray(pixels).tobytes()
        packed = zlib.compress(raw, 1)
        compress = cpu_ms(lambda raw=raw: zlib.compress(raw, 1), max(5, args.runs // 3))
        decompress = cpu_ms(lambda packed=packed: zlib.decompress(packed), max(5, args.runs // 3))
        print(
            f"| {name} | {len(raw) / 1e6:.2f} | {len(packed) / 1e6:.2f} ({len(raw) / len(packed):.1f}x) | "
            f"{compress:.1f} | {decompress:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
