"""Lite pipeline benchmark: per-stage and total latency and peak RSS at 1024 px, plus a contact sheet.

    .venv/bin/python bench/bench_lite.py --samples ../shared/samples --out /tmp/tryon-bench

Pairs person i with garment i (8 pairs for the shared samples), warms up once, then times ``--runs`` runs of
each pair; reports the median per stage over all runs. The contact sheet (person | garment | result per
row) goes to ``--out``, outside the repository: the sample photos' licence forbids committing anything made
from them. Prints a markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from tryon import imaging
from tryon.pipeline import TryOnPipeline, load_image
from tryon.settings import load_stage_settings
from tryon.types import STAGES, BackendKind


def find_pairs(samples: Path) -> list[tuple[Path, Path]]:
    persons = sorted(p for p in (samples / "person").iterdir() if p.suffix.lower() in {".jpg", ".png"})
    garments = sorted(p for p in (samples / "garment").iterdir() if p.suffix.lower() in {".jpg", ".png"})
    if not persons or not garments:
        raise SystemExit(f"no person/ and garment/ photos under {samples}")
    return [(person, garments[i % len(garments)]) for i, person in enumerate(persons)]


def thumbnail(image: np.ndarray, height: int = 384) -> np.ndarray:
    if image.shape[2] == 4:  # RGBA garment: show it on white
        alpha = image[..., 3:4].astype(np.float32) / 255
        image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    width = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def contact_sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    rendered = [np.hstack([thumbnail(image) for image in row]) for row in rows]
    width = max(row.shape[1] for row in rendered)
    padded = [
        np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rendered
    ]
    return np.vstack(padded)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, default=Path("../shared/samples"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/tryon-bench"))
    parser.add_argument("--runs", type=int, default=5, help="timed runs per pair after one warm-up")
    args = parser.parse_args()

    pairs = find_pairs(args.samples)
    inputs = [
        (load_image(p, field="person"), load_image(g, field="garment", mode="RGBA"), p.name, g.name)
        for p, g in pairs
    ]
    pipeline = TryOnPipeline.from_settings(load_stage_settings(backend=BackendKind.LITE))
    setup_started = time.perf_counter()
    pipeline.setup()
    setup_s = time.perf_counter() - setup_started

    per_stage: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    sheet_rows, failures, working = [], [], []
    for person, garment, person_name, garment_name in inputs:
        try:
            result = pipeline.run(person, garment)  # warm-up, and the contact sheet's image
        except Exception as error:  # report and keep benchmarking the other pairs
            failures.append(f"{person_name} + {garment_name}: {error}")
            continue
        sheet_rows.append([result.person, garment, result.warp.warped_garment, result.image])
        working.append((person, garment))
    # Round-robin over the pairs, so no run sees the photo of the run before it (the lite stages keep the
    # last photo's pose landmarks, which only a repeat of the same photo would hit).
    for _ in range(args.runs):
        for person, garment in working:
            for stage, seconds in pipeline.run(person, garment).timings.items():
                per_stage[stage].append(seconds)
    pipeline.close()

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.mkdir(parents=True, exist_ok=True)
    sheet_path = args.out / "contact_sheet.png"
    if sheet_rows:
        sheet_path.write_bytes(imaging.encode_png(contact_sheet(sheet_rows), compression=6))

    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    succeeded = len(inputs) - len(failures)
    print(f"pairs: {succeeded} of {len(inputs)}, runs per pair: {args.runs}, setup: {setup_s:.2f} s")
    print(f"torch imported: {'torch' in sys.modules}")
    print()
    print("| stage | median ms | p90 ms |")
    print("|---|---:|---:|")
    for stage, values in per_stage.items():
        if values:
            p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
            print(f"| {stage} | {statistics.median(values) * 1000:.1f} | {p90 * 1000:.1f} |")
    print(f"\npeak RSS: {peak_rss_mb:.0f} MB")
    print(f"contact sheet: {sheet_path}")
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
