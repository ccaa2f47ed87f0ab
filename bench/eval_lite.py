"""Fidelity of the lite try-on per pair and per category, with pass / fail against issue #12's targets.

    .venv/bin/python bench/eval_lite.py --samples ../shared/samples --out /tmp/eval-lite

Pairs: every ``person/`` photo with every ``garment/`` photo (upper body), and under ``fullbody/`` every
``person/`` photo with every ``garment/<category>/`` photo. Each pair runs through the in-process lite
pipeline at 1024 px; the measures, per pair:

- **coverage**: share of the clothing mask's replaced part (``tryon.vision.mask_kinds``: the worn garment
  and the category's region; not the body around it the new garment may cover, nor the old sleeves on the
  arms, which only a sleeved garment covers) that the warped garment covers (alpha > 127).
- **print**: SIFT matches garment photo -> result (inside the garment's silhouette / the result's clothing
  region, Lowe ratio 0.75, one match per result keypoint), a RANSAC similarity
  (``cv2.estimateAffinePartial2D``) through them: its inlier count and its scale against the silhouette's
  scale ``sqrt(warped area / photo silhouette area)``. The
  photo silhouette comes from an independent GrabCut seeded by the photo's border, not from the warp's own
  separation, so a separation that loses part of the garment shows as a wrong scale. The warped area is the
  whole garment's: the warp runs once more into the person's frame padded on every side, so a garment
  hanging out of the photo (a long top on a person cut at the hips) is not taken for a smaller one. A
  garment is "printed" when its silhouette holds at least :data:`PRINTED_MIN_KEYPOINTS` strong SIFT keypoints.
- **smear**: share of the uncovered fill (mask pixels the garment does not cover) whose colour is far
  (CIE Lab distance > :data:`SMEAR_DISTANCE`) from every colour of the surfaces next to the mask nearby
  (the flat pixels of the ring around the replaced region, in the same and neighbouring tiles of the
  photo).
- **residue**: share of the worn garment (the lite segmentation's seeded-GrabCut estimate of it, with the
  generic skin model) left outside the replaced region, i.e. still showing in the result.

Pass: coverage >= 0.85; printed garments >= 12 inliers and print scale / silhouette scale in 0.8-1.25;
smear <= 0.10; residue <= 0.15. Writes ``results.json`` and one contact sheet per category (person |
garment | warped | result) to ``--out``, outside the repository (the samples' licence forbids committing
anything made from them).

``--mirror`` runs every pair mirrored left-right (person and garment photo both): the code should not care,
so the figures should match the plain run's up to the photos' own asymmetry. A category or a garment that
does much worse mirrored is a bug of one side (a speck beside one leg of the pink jeans moved a landmark
only when it lay on the right).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from tryon import imaging
from tryon.pipeline import TryOnPipeline, load_image, prepare_garment
from tryon.settings import load_stage_settings
from tryon.types import BackendKind, GarmentCategory, StageInputError, WarpInput
from tryon.vision.fidelity import garment_silhouette, print_match, smear_share

try:  # the worn-garment estimate, for the residue measure (moved by the lite segmentation's split)
    from services.segmentation.body import body_shapes
    from services.segmentation.garment import GENERIC_SKIN_MODEL, estimate_garment
    from tryon.vision.mediapipe_landmarks import shared_pose_landmarker
except ImportError:
    from services.pose.mediapipe_landmarks import shared_pose_landmarker  # type: ignore[no-redef]

    from services.segmentation.lite import (  # type: ignore[no-redef]
        GENERIC_SKIN_MODEL,
        body_shapes,
        estimate_garment,
    )
try:
    from tryon.vision import mask_kinds

    replace_region, edit_region = mask_kinds.replace_region, mask_kinds.edit_region
    body_region = mask_kinds.body_region
except ImportError:  # a checkout from before the mask carried kinds (0/255): measure the baseline too

    def replace_region(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        return mask > 127

    edit_region = body_region = replace_region

COVERAGE_MIN = 0.85
INLIERS_MIN = 12
SCALE_RANGE = (0.8, 1.25)
SMEAR_MAX = 0.10
#: The whole warped garment is measured in the frame padded by this fraction of its height on every side
#: (a top on a photo cut at the chest may hang that far below it), at this fraction of its size.
AREA_PAD = 1.0
AREA_SCALE = 0.5
RESIDUE_MAX = 0.15
PRINTED_MIN_KEYPOINTS = 60
EVAL_LONG_SIDE = 1024
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
BoolMask = npt.NDArray[np.bool_]


@dataclass
class PairResult:
    set: str
    category: str
    person: str
    garment: str
    error: str = ""
    coverage: float = 0.0
    printed: bool = False
    garment_keypoints: int = 0
    inliers: int = 0
    print_scale: float = 0.0
    silhouette_scale: float = 0.0
    scale_ratio: float = 0.0
    smear: float = 0.0
    residue: float = 0.0
    seconds: float = 0.0
    failed: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.error and not self.failed


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def find_pairs(samples: Path) -> list[tuple[str, GarmentCategory, Path, Path]]:
    pairs = []
    for person in images_in(samples / "person"):
        for garment in images_in(samples / "garment"):
            pairs.append(("top", GarmentCategory.UPPER_BODY, person, garment))
    fullbody = samples / "fullbody"
    for category in GarmentCategory:
        for person in images_in(fullbody / "person"):
            for garment in images_in(fullbody / "garment" / category.value):
                pairs.append(("fullbody", category, person, garment))
    return pairs


# ------------------------------------------------------------------------------------------ measures


def worn_garment(person: npt.NDArray[np.uint8], person_mask: BoolMask, category: GarmentCategory) -> BoolMask:
    """The garment of ``category`` the person wears: the lite segmentation's seeded GrabCut, generic skin."""
    landmarks = shared_pose_landmarker().detect(person)
    if landmarks is None:
        return np.zeros(person.shape[:2], bool)
    shapes = body_shapes(landmarks.points)
    return estimate_garment(person, person_mask, shapes, category, GENERIC_SKIN_MODEL).garment


def warped_area(
    pipeline: TryOnPipeline,
    garment: npt.NDArray[np.uint8],
    keypoints: npt.NDArray[np.float32],
    size: tuple[int, int],
    category: GarmentCategory,
) -> float:
    """The warped garment's whole area (alpha > 127) on the person, inside the frame and out of it, in the
    frame's pixels: the warp once more, into the frame padded by :data:`AREA_PAD` of its height on every
    side at :data:`AREA_SCALE` of its size (the area is as exact to 1 %, at a quarter of the pixels)."""
    pad = AREA_PAD * size[0] * AREA_SCALE
    scaled = keypoints.copy()
    scaled[:, :2] = scaled[:, :2] * AREA_SCALE + pad  # confidence (column 2) says which are missing
    padded = (round(size[0] * AREA_SCALE + 2 * pad), round(size[1] * AREA_SCALE + 2 * pad))
    warp = pipeline.backends["warp"].run(
        WarpInput(garment=prepare_garment(garment), keypoints=scaled, target_size=padded, category=category)
    )
    return float((warp.warped_garment[..., 3] > 127).sum()) / AREA_SCALE**2


def evaluate(
    pipeline: TryOnPipeline,
    set_name: str,
    category: GarmentCategory,
    person_path: Path,
    garment_path: Path,
    mirror: bool = False,
) -> tuple[PairResult, list[npt.NDArray[np.uint8]] | None]:
    record = PairResult(set_name, category.value, person_path.name, garment_path.name)
    person = load_image(person_path, field="person")
    garment = load_image(garment_path, field="garment", mode="RGBA")
    if mirror:
        person, garment = np.ascontiguousarray(person[:, ::-1]), np.ascontiguousarray(garment[:, ::-1])
    started = time.perf_counter()
    try:
        result = pipeline.run(person, garment, category=category)
    except StageInputError as error:
        record.error = str(error)
        record.failed = ("error",)
        return record, None
    record.seconds = time.perf_counter() - started
    image = result.image
    mask_values = result.segmentation.clothing_mask
    replace = replace_region(mask_values)
    edited = edit_region(mask_values)
    alpha = result.warp.warped_garment[..., 3] > 127
    covered = alpha & edited
    body = body_region(mask_values)
    record.coverage = float((covered & body).sum() / max(1, body.sum()))

    garment_rgb = imaging.to_working_resolution(garment[..., :3], EVAL_LONG_SIDE)
    silhouette = garment_silhouette(garment_rgb)
    region = cv2.dilate(covered.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    keypoints, inliers, scale = print_match(garment_rgb, silhouette, image, region)
    record.garment_keypoints, record.inliers, record.print_scale = keypoints, inliers, scale
    record.printed = keypoints >= PRINTED_MIN_KEYPOINTS
    whole_area = warped_area(
        pipeline, garment, result.pose.keypoints, (image.shape[0], image.shape[1]), category
    )
    record.silhouette_scale = float(np.sqrt(whole_area / max(1, silhouette.sum())))
    record.scale_ratio = scale / record.silhouette_scale if record.silhouette_scale > 0 and scale else 0.0

    record.smear = smear_share(image, replace, replace & ~alpha)
    old = worn_garment(result.person, result.segmentation.person_mask > 127, category)
    replaced = cv2.dilate(replace.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    record.residue = float((old & ~replaced).sum() / max(1, old.sum()))

    failed = []
    if record.coverage < COVERAGE_MIN:
        failed.append("coverage")
    if record.printed and record.inliers < INLIERS_MIN:
        failed.append("inliers")
    if (
        record.printed
        and record.inliers >= INLIERS_MIN
        and not (SCALE_RANGE[0] <= record.scale_ratio <= SCALE_RANGE[1])
    ):
        failed.append("scale")
    if record.smear > SMEAR_MAX:
        failed.append("smear")
    if record.residue > RESIDUE_MAX:
        failed.append("residue")
    record.failed = tuple(failed)
    return record, [result.person, garment, result.warp.warped_garment, image]


def thumbnail(image: npt.NDArray[np.uint8], height: int = 256) -> npt.NDArray[np.uint8]:
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255
        checker = np.where((np.indices(image.shape[:2]).sum(0) // 16) % 2 == 0, 200, 255)[..., None]
        image = (image[..., :3] * alpha + checker * (1 - alpha)).astype(np.uint8)
    width = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def label(image: npt.NDArray[np.uint8], text: str, ok: bool) -> npt.NDArray[np.uint8]:
    image = image.copy()
    colour = (0, 140, 0) if ok else (200, 0, 0)
    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return image


def write_sheets(out: Path, sheets: dict[str, list[npt.NDArray[np.uint8]]]) -> list[Path]:
    paths = []
    for name, tiles in sheets.items():
        per_row = 4  # pairs per row; each tile is person | garment | warped | result
        rows = []
        for start in range(0, len(tiles), per_row):
            row = tiles[start : start + per_row]
            row += [np.full_like(tiles[0], 255)] * (per_row - len(row))
            rows.append(np.hstack(row))
        path = out / f"sheet_{name}.png"
        path.write_bytes(imaging.encode_png(np.vstack(rows), compression=6))
        paths.append(path)
    return paths


def summarise(results: list[PairResult]) -> None:
    print(
        "| set | category | pairs | pass | coverage (median) | printed: inliers >= 12 | scale ok "
        "| smear ok | residue ok |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    groups: dict[tuple[str, str], list[PairResult]] = {}
    for record in results:
        groups.setdefault((record.set, record.category), []).append(record)
    groups[("all", "all")] = results
    for (set_name, category), records in groups.items():
        ran = [r for r in records if not r.error]
        printed = [r for r in ran if r.printed]
        passed = sum(r.passed for r in records)
        coverage = statistics.median([r.coverage for r in ran]) if ran else 0.0
        inliers_ok = sum(r.inliers >= INLIERS_MIN for r in printed)
        scale_ok = sum("scale" not in r.failed and r.inliers >= INLIERS_MIN for r in printed)
        print(
            f"| {set_name} | {category} | {len(records)} | {passed} ({100 * passed / len(records):.0f} %) "
            f"| {coverage:.2f} | {inliers_ok}/{len(printed)} | {scale_ok}/{len(printed)} "
            f"| {sum(r.smear <= SMEAR_MAX for r in ran)}/{len(ran)} "
            f"| {sum(r.residue <= RESIDUE_MAX for r in ran)}/{len(ran)} |"
        )
    times = [r.seconds for r in results if not r.error]
    if times:
        print(f"\nmedian pipeline time per pair (measures excluded): {statistics.median(times):.2f} s")
    failures: dict[str, int] = {}
    for record in results:
        for reason in record.failed:
            failures[reason] = failures.get(reason, 0) + 1
    print(
        "failures by measure (a pair may fail several):",
        dict(sorted(failures.items(), key=lambda kv: -kv[1])),
    )
    total = len(results)
    passed = sum(r.passed for r in results)
    print(f"PASS RATE: {passed}/{total} = {100 * passed / max(1, total):.0f} % (target >= 90 %)")


def pair_arguments(description: str | None, out: str) -> argparse.ArgumentParser:
    """The sample benchmarks' common arguments: the samples, the output folder, which pairs."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, default=Path("../shared/samples"))
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--only", default="", help="substring filter on 'set/category/person/garment'")
    parser.add_argument("--every", type=int, default=1, help="run every n-th pair (quick runs)")
    return parser


def selected_pairs(args: argparse.Namespace) -> list[tuple[str, GarmentCategory, Path, Path]]:
    """The pairs ``--only`` and ``--every`` select (exits when there are none); makes ``--out``."""
    pairs = [
        pair
        for pair in find_pairs(args.samples)
        if args.only in f"{pair[0]}/{pair[1].value}/{pair[2].name}/{pair[3].name}"
    ][:: args.every]
    if not pairs:
        raise SystemExit(f"no pairs under {args.samples}")
    args.out.mkdir(parents=True, exist_ok=True)
    return pairs


def main() -> int:
    parser = pair_arguments(__doc__, "/tmp/eval-lite")
    parser.add_argument("--quiet", action="store_true", help="no per-pair lines")
    parser.add_argument("--mirror", action="store_true", help="pairs mirrored left-right (a symmetry check)")
    args = parser.parse_args()

    pairs = selected_pairs(args)
    pipeline = TryOnPipeline.from_settings(load_stage_settings(backend=BackendKind.LITE))
    pipeline.setup()
    results: list[PairResult] = []
    sheets: dict[str, list[npt.NDArray[np.uint8]]] = {}
    for set_name, category, person_path, garment_path in pairs:
        record, images = evaluate(pipeline, set_name, category, person_path, garment_path, args.mirror)
        results.append(record)
        if not args.quiet:
            verdict = "PASS" if record.passed else "FAIL " + ",".join(record.failed)
            print(
                f"{set_name:8s} {category.value:10s} {person_path.name:14s} {garment_path.name:12s} "
                f"cov {record.coverage:.2f} kp {record.garment_keypoints:4d} inl {record.inliers:4d} "
                f"scale {record.scale_ratio:.2f} smear {record.smear:.2f} residue {record.residue:.2f} "
                f"{record.seconds:.2f}s {verdict} {record.error}",
                flush=True,
            )
        if images is not None:
            text = f"{'ok' if record.passed else ','.join(record.failed)} c{record.coverage:.2f}"
            tiles = [thumbnail(image) for image in images]
            tiles[-1] = label(tiles[-1], text, record.passed)
            sheets.setdefault(f"{set_name}_{category.value}", []).append(np.hstack(tiles))
    pipeline.close()
    (args.out / "results.json").write_text(
        json.dumps([asdict(r) | {"passed": r.passed} for r in results], indent=1)
    )
    summarise(results)
    for path in write_sheets(args.out, sheets):
        print(f"sheet: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
