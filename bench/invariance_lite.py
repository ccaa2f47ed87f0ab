"""Invariance of the lite try-on: the same pair photographed a little differently should be worn the same.

    .venv/bin/python bench/invariance_lite.py --samples ../shared/samples --out /tmp/invariance-lite

For each sample pair (``bench/eval_lite.py``'s pairs, every ``--every``-th), the in-process lite pipeline
runs on the plain photos and on each variant below; the measure is the IoU of the warped garment
(alpha > 127) with the plain run's, in the plain run's frame (a variant of the person photo is mapped back
first). Results are also judged on unseen photos: a product photo with a wider margin or a slight tilt, or
a person photo at another size or position, is the same try-on, and a large change is a bug of scale or
position (a garment small in a wide frame lost the gaps between its sleeves and its torso).

Variants of the garment photo (the person unchanged):

- ``garment-margin``: the photo in a frame twice its size, its backdrop continued (edge pixels repeated);
- ``garment-half``: the photo at half its size;
- ``garment-tilt``: turned by :data:`TILT_DEGREES` about its centre (a flat lay not quite straight);
- ``garment-shade``: lit unevenly, darker by :data:`SHADE` from top to bottom.

Variants of the person photo, compared after mapping back onto the plain frame:

- ``person-half``: the photo at half its size;
- ``person-shift``: moved right by :data:`SHIFT` of its width, the left edge's columns repeated.

Prints one line per pair and a summary per variant (median IoU, pairs below :data:`IOU_LOW`), writes
``results.json`` and a contact sheet per category (plain result, then each variant's) to ``--out``,
outside the repository (the samples' licence forbids committing anything made from them).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_lite import pair_arguments, selected_pairs, thumbnail

from tryon.pipeline import TryOnPipeline, load_image
from tryon.settings import load_stage_settings
from tryon.types import BackendKind, StageInputError

TILT_DEGREES = 3.0
SHADE = 0.15
SHIFT = 0.1
IOU_LOW = 0.8
Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def garment_margin(photo: Image) -> Image:
    """The photo in the middle of a frame twice its size, its edge pixels repeated outwards: the backdrop
    goes on as it ends (a fill of one colour drew the photo's edge as a frame where its backdrop shades)."""
    height, width = photo.shape[:2]
    return cv2.copyMakeBorder(
        photo, height // 2, height - height // 2, width // 2, width - width // 2, cv2.BORDER_REPLICATE
    )


def half(photo: Image) -> Image:
    height, width = photo.shape[:2]
    return cv2.resize(photo, (width // 2, height // 2), interpolation=cv2.INTER_AREA)


def garment_tilt(photo: Image) -> Image:
    height, width = photo.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), TILT_DEGREES, 1.0)
    return cv2.warpAffine(
        photo, turn, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def garment_shade(photo: Image) -> Image:
    """The photo's colours (not an alpha channel's) darker by up to :data:`SHADE`, top to bottom."""
    ramp = np.linspace(1.0, 1.0 - SHADE, photo.shape[0], dtype=np.float32)[:, None, None]
    shaded = photo.copy()
    shaded[..., :3] = np.clip(photo[..., :3].astype(np.float32) * ramp, 0, 255).astype(np.uint8)
    return shaded


def person_shift(photo: Image) -> Image:
    width = photo.shape[1]
    move = np.array([[1, 0, round(SHIFT * width)], [0, 1, 0]], np.float32)
    return cv2.warpAffine(photo, move, (width, photo.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def back_from_shift(mask: Mask, input_width: int) -> Mask:
    """``mask`` (in the result frame of a photo ``input_width`` wide, shifted) moved back by the shift."""
    columns = round(round(SHIFT * input_width) * mask.shape[1] / input_width)
    back = np.zeros_like(mask)
    back[:, : mask.shape[1] - columns] = mask[:, columns:]
    return back


def onto(mask: Mask, shape: tuple[int, ...]) -> Mask:
    """``mask`` resized onto a frame of ``shape`` (nearest)."""
    if mask.shape == shape[:2]:
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)


def iou(a: Mask, b: Mask) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


Variant = Callable[[Image], Image]
GARMENT_VARIANTS: dict[str, Variant] = {
    "garment-margin": garment_margin,
    "garment-half": half,
    "garment-tilt": garment_tilt,
    "garment-shade": garment_shade,
}
PERSON_VARIANTS: dict[str, Variant] = {"person-half": half, "person-shift": person_shift}


def main() -> int:
    args = pair_arguments(__doc__, "/tmp/invariance-lite").parse_args()
    pairs = selected_pairs(args)
    pipeline = TryOnPipeline.from_settings(load_stage_settings(backend=BackendKind.LITE))
    pipeline.setup()
    names = [*GARMENT_VARIANTS, *PERSON_VARIANTS]
    records: list[dict[str, object]] = []
    sheets: dict[str, list[Image]] = {}
    for set_name, category, person_path, garment_path in pairs:
        person = load_image(person_path, field="person")
        garment = load_image(garment_path, field="garment", mode="RGBA")
        plain = pipeline.run(person, garment, category=category)
        plain_alpha = plain.warp.warped_garment[..., 3] > 127
        record: dict[str, object] = {"set": set_name, "category": category.value}
        record |= {"person": person_path.name, "garment": garment_path.name}
        tiles = [thumbnail(plain.image)]
        for name in names:
            try:
                if name in GARMENT_VARIANTS:
                    result = pipeline.run(person, GARMENT_VARIANTS[name](garment), category=category)
                    alpha = result.warp.warped_garment[..., 3] > 127
                else:
                    result = pipeline.run(PERSON_VARIANTS[name](person), garment, category=category)
                    alpha = result.warp.warped_garment[..., 3] > 127
                    if name == "person-shift":
                        alpha = back_from_shift(alpha, person.shape[1])
                record[name] = iou(onto(alpha, plain_alpha.shape), plain_alpha)
                tiles.append(thumbnail(result.image))
            except StageInputError as error:
                record[name] = 0.0
                record[f"{name} error"] = str(error)
                tiles.append(np.zeros_like(tiles[0]))
        records.append(record)
        print(
            f"{set_name:8s} {category.value:10s} {person_path.name:14s} {garment_path.name:12s} "
            + " ".join(f"{name} {record[name]:.2f}" for name in names),
            flush=True,
        )
        height = min(tile.shape[0] for tile in tiles)
        sheets.setdefault(f"{set_name}_{category.value}", []).append(
            np.hstack([tile[:height] for tile in tiles])
        )
    pipeline.close()
    (args.out / "results.json").write_text(json.dumps(records, indent=1))
    print(f"\n| variant | pairs | median IoU with the plain run | IoU < {IOU_LOW} |")
    print("|---|---:|---:|---:|")
    for name in names:
        values = [float(record[name]) for record in records]  # type: ignore[arg-type]
        low = sum(value < IOU_LOW for value in values)
        print(f"| {name} | {len(values)} | {statistics.median(values):.3f} | {low} |")
    for key, rows in sheets.items():
        width = max(row.shape[1] for row in rows)
        padded = [
            np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows
        ]
        path = args.out / f"sheet_{key}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.vstack(padded), cv2.COLOR_RGB2BGR))
        print(f"sheet: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
