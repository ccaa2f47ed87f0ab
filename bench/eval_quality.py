"""Try-on quality, measured as the papers do (VITON-HD protocol), plus garment measures without ground truth.

    # 1. fetch the metric backbones once (network); afterwards everything runs offline
    python bench/eval_quality.py --fetch-weights

    # 2a. run our pipeline on a VITON-HD-style test folder and score it (paired: each person with its own
    #     garment, the person photo is the ground truth)
    python bench/eval_quality.py --dataset VITON-HD/test --mode paired --backend full --out /tmp/eval-paired
    # 2b. unpaired: the pairs file (person, garment) lines; FID / KID against the test persons
    python bench/eval_quality.py --dataset VITON-HD/test --mode unpaired --pairs VITON-HD/test_pairs.txt \\
        --backend full --out /tmp/eval-unpaired
    # 2c. score results made elsewhere (another system's outputs), named like the ground-truth photos
    python bench/eval_quality.py --results other/results --ground-truth VITON-HD/test/image --mode paired

Dataset layout (VITON-HD's): ``DIR/image/*.jpg`` persons, ``DIR/cloth/*.jpg`` garments of the same names.
Results are written to ``OUT/result/`` (named like the person), with ``OUT/warped/`` (the warped garment,
RGBA PNG) and ``OUT/scores.csv`` (per image) beside them, and the summary printed as a markdown table.

Metrics (the same implementations CatVTON's eval.py uses, so figures are comparable):

* paired **SSIM**: torchmetrics ``StructuralSimilarityIndexMeasure(data_range=1.0)`` on the result and the
  ground truth at the ground truth's size (VITON-HD: 1024 x 768). No weights.
* paired **LPIPS**: torchmetrics ``LearnedPerceptualImagePatchSimilarity``, backbone ``--lpips-net``
  (default ``squeeze``: SqueezeNet 1.1, as CatVTON's eval.py; ``alex`` and ``vgg`` are the other choices
  and give different numbers: say which one a figure used). The linear heads ship with torchmetrics; the
  backbone's ImageNet weights come from torchvision (``TORCH_HOME``, default ``~/.cache/torch``).
* **FID** and **KID** (x 1000, as the papers print it): clean-fid's "clean" mode with the StyleGAN2-ADA
  TorchScript Inception (``inception-2015-12-05.pt``, kept in ``--weights-dir``), results vs the ground-truth
  folder (paired) or vs the test persons (unpaired).
* garment measures, no ground truth needed (our runs, from the warped garment the warp stage produced):
  **print recall** (share of the warped garment's SIFT keypoints whose best match in the result, by Lowe's
  ratio test at 0.8, lies within 4 px of it: logos, text and prints that survived), **colour dE00** (mean
  CIEDE2000 between the blurred warped garment and the blurred result inside the garment), and **garment
  LPIPS** (LPIPS between the warped garment and the result on the garment's box, both on grey outside it).

A metric whose backbone weights are not on disk is reported as skipped, with the command that fetches
them; nothing downloads unless ``--fetch-weights`` is given.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere

from tryon import imaging  # noqa: E402
from tryon.types import GarmentCategory  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
LPIPS_BACKBONES = {"squeeze": "squeezenet1_1", "alex": "alexnet", "vgg": "vgg16"}
INCEPTION_FILE = "inception-2015-12-05.pt"
DEFAULT_WEIGHTS_DIR = Path.home() / ".cache" / "tryon-eval"
FETCH_HINT = "python bench/eval_quality.py --fetch-weights"
#: Print recall: Lowe's ratio and the largest displacement (px) of a kept keypoint.
RATIO = 0.8
MATCH_RADIUS = 4.0
MIN_KEYPOINTS = 8
#: Colour difference: Gaussian sigma (px) before comparing (prints and shading are not colour shifts).
COLOUR_SIGMA = 2.0
GARMENT_ERODE = 3


# ---------------------------------------------------------------------------------------------- weights


def lpips_weights_path(net: str) -> Path:
    """Where torchvision keeps the ImageNet weights of an LPIPS backbone (whether or not present)."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(LPIPS_BACKBONES[net]).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def inception_path(weights_dir: Path) -> Path:
    return weights_dir / INCEPTION_FILE


def fetch_weights(weights_dir: Path, nets: Iterable[str]) -> list[Path]:
    """Download the LPIPS backbones and clean-fid's Inception (needs network); returns their paths."""
    import torchvision
    from cleanfid.downloads_helper import check_download_inception

    paths = []
    for net in nets:
        getattr(torchvision.models, LPIPS_BACKBONES[net])(weights="DEFAULT")
        paths.append(lpips_weights_path(net))
    weights_dir.mkdir(parents=True, exist_ok=True)
    paths.append(Path(check_download_inception(fpath=str(weights_dir))))
    return paths


# ---------------------------------------------------------------------------------------------- metrics


@dataclass
class Scores:
    """Per-image scores (None: not applicable or skipped) and the summary of the whole set."""

    per_image: dict[str, dict[str, float | None]] = field(default_factory=dict)
    summary: dict[str, float | str] = field(default_factory=dict)

    def add(self, name: str, metric: str, value: float | None) -> None:
        self.per_image.setdefault(name, {})[metric] = value

    def mean(self, metric: str) -> float | None:
        values = [row[metric] for row in self.per_image.values() if row.get(metric) is not None]
        return statistics.fmean(values) if values else None


def to_tensor(image: npt.NDArray[np.uint8]) -> Any:
    """uint8 RGB (H, W, 3) -> float tensor (1, 3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def ssim(result: npt.NDArray[np.uint8], truth: npt.NDArray[np.uint8]) -> float:
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    return float(StructuralSimilarityIndexMeasure(data_range=1.0)(to_tensor(result), to_tensor(truth)))


class Lpips:
    """torchmetrics LPIPS with one backbone, built once (only when its weights are on disk)."""

    def __init__(self, net: str, device: str) -> None:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self.device = device
        self.metric = LearnedPerceptualImagePatchSimilarity(net_type=net).to(device).eval()

    def __call__(self, first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8]) -> float:
        import torch

        with torch.inference_mode():
            value = self.metric(
                to_tensor(first).to(self.device) * 2 - 1, to_tensor(second).to(self.device) * 2 - 1
            )
        self.metric.reset()
        return float(value)


def inception_features(files: Sequence[Path], weights_dir: Path, device: str, batch_size: int = 16) -> Any:
    """clean-fid "clean" features of image files (its resize and Inception, weights from ``weights_dir``)."""
    import torch
    from cleanfid import fid
    from cleanfid.inception_torchscript import InceptionV3W

    model = InceptionV3W(str(weights_dir), download=False, resize_inside=False).to(device).eval()
    return fid.get_files_features(
        [str(path) for path in files],
        model=lambda batch: model(batch),
        num_workers=0,
        batch_size=batch_size,
        device=torch.device(device),
        mode="clean",
        description="inception ",
        verbose=False,
    )


def fid_kid(
    results: Sequence[Path], references: Sequence[Path], weights_dir: Path, device: str
) -> tuple[float, float]:
    """FID and KID x 1000 between two sets of image files (clean-fid)."""
    from cleanfid import fid

    first = inception_features(results, weights_dir, device)
    second = inception_features(references, weights_dir, device)
    return float(fid.fid_from_feats(first, second)), 1000.0 * float(fid.kernel_distance(first, second))


def garment_region(warped: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """The warped garment's opaque pixels, eroded a little (its antialiased edge is not garment)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GARMENT_ERODE + 1, 2 * GARMENT_ERODE + 1))
    return cv2.erode((warped[..., 3] > 127).astype(np.uint8), kernel) > 0


def on_grey(image: npt.NDArray[np.uint8], region: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    return np.where(region[..., None], image[..., :3], 128).astype(np.uint8)


def print_recall(result: npt.NDArray[np.uint8], warped: npt.NDArray[np.uint8]) -> float | None:
    """Share of the warped garment's SIFT keypoints found again, in place, in the result (None: the garment
    has too little print to measure)."""
    region = garment_region(warped)
    sift = cv2.SIFT_create()
    garment_grey = cv2.cvtColor(on_grey(warped, region), cv2.COLOR_RGB2GRAY)
    # A keypoint whose window reaches the garment's outline describes its silhouette, not its print.
    inside = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)
    keypoints = [
        point
        for point in sift.detect(garment_grey, region.astype(np.uint8) * 255)
        if inside[round(point.pt[1]), round(point.pt[0])] >= point.size
    ]
    keypoints, descriptors = sift.compute(garment_grey, keypoints) if keypoints else ([], None)
    if descriptors is None or len(keypoints) < MIN_KEYPOINTS:
        return None
    # The result on the same grey outside the garment: only what lies inside the garment counts.
    result_grey = cv2.cvtColor(on_grey(result, region), cv2.COLOR_RGB2GRAY)
    result_keypoints, result_descriptors = sift.detectAndCompute(result_grey, region.astype(np.uint8) * 255)
    if result_descriptors is None or len(result_keypoints) < 2:
        return 0.0
    found = 0
    for pair in cv2.BFMatcher(cv2.NORM_L2).knnMatch(descriptors, result_descriptors, k=2):
        if len(pair) < 2 or pair[0].distance >= RATIO * pair[1].distance:
            continue
        source = np.array(keypoints[pair[0].queryIdx].pt)
        target = np.array(result_keypoints[pair[0].trainIdx].pt)
        found += bool(np.linalg.norm(source - target) <= MATCH_RADIUS)
    return found / len(keypoints)


def colour_difference(result: npt.NDArray[np.uint8], warped: npt.NDArray[np.uint8]) -> float | None:
    """Mean CIEDE2000 between the blurred warped garment and the blurred result, inside the garment."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    region = garment_region(warped)
    if not region.any():
        return None
    first = cv2.GaussianBlur(warped[..., :3], (0, 0), COLOUR_SIGMA)
    second = cv2.GaussianBlur(result, (0, 0), COLOUR_SIGMA)
    return float(deltaE_ciede2000(rgb2lab(first), rgb2lab(second))[region].mean())


def garment_lpips(result: npt.NDArray[np.uint8], warped: npt.NDArray[np.uint8], lpips: Lpips) -> float | None:
    region = garment_region(warped)
    if not region.any():
        return None
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    first, second = on_grey(warped, region)[box], on_grey(result, region)[box]
    if min(first.shape[:2]) < 32:  # below LPIPS's receptive field
        return None
    return lpips(first, second)


# ---------------------------------------------------------------------------------------------- running


def images_in(directory: Path) -> dict[str, Path]:
    """Image files of a folder by stem."""
    return {path.stem: path for path in sorted(directory.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}


def read_rgb(path: Path, mode: imaging.ColourMode = "RGB") -> npt.NDArray[np.uint8]:
    return imaging.decode_image(path.read_bytes(), mode=mode)


def write_png(path: Path, image: npt.NDArray[np.uint8]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(imaging.encode_png(image))


def dataset_pairs(
    dataset: Path, mode: str, pairs_file: Path | None, limit: int | None
) -> list[tuple[Path, Path]]:
    """(person, garment) files: paired, each person with the garment of its name; unpaired, the pairs file."""
    persons, garments = images_in(dataset / "image"), images_in(dataset / "cloth")
    if mode == "paired":
        pairs = [(persons[stem], garments[stem]) for stem in persons if stem in garments]
    else:
        if pairs_file is None:
            raise SystemExit("--mode unpaired needs --pairs (lines: person_file garment_file)")
        pairs = []
        for line in pairs_file.read_text().splitlines():
            if line.strip():
                person, garment = line.split()[:2]
                pairs.append((dataset / "image" / person, dataset / "cloth" / garment))
    return pairs[:limit] if limit else pairs


def run_pipeline(
    pairs: Sequence[tuple[Path, Path]], out: Path, backend: str, category: GarmentCategory, seed: int
) -> None:
    """Our try-on of every pair: OUT/result/<person>.png at the person photo's size, and the warped
    garment as OUT/warped/<person>.png."""
    from tryon.pipeline import TryOnPipeline
    from tryon.settings import load_stage_settings
    from tryon.types import GenerationOptions

    pipeline = TryOnPipeline.from_settings(load_stage_settings(backend=backend))
    pipeline.setup()
    try:
        for index, (person_file, garment_file) in enumerate(pairs):
            person = read_rgb(person_file)
            started = time.perf_counter()
            result = pipeline.run(
                person,
                read_rgb(garment_file, mode="RGBA"),
                category=category,
                options=GenerationOptions(seed=seed),
            )
            height, width = person.shape[:2]
            image = cv2.resize(result.image, (width, height), interpolation=cv2.INTER_AREA)
            warped = cv2.resize(result.warp.warped_garment, (width, height), interpolation=cv2.INTER_AREA)
            write_png(out / "result" / f"{person_file.stem}.png", image)
            write_png(out / "warped" / f"{person_file.stem}.png", warped)
            print(
                f"[{index + 1}/{len(pairs)}] {person_file.stem}: {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
    finally:
        pipeline.close()


def evaluate(
    results: Path,
    *,
    truths: Path | None,
    references: Path | None,
    warped: Path | None,
    lpips_net: str,
    weights_dir: Path,
    device: str,
) -> Scores:
    """Every metric that applies: paired ones where ``truths`` has an image of the result's name, FID/KID
    against ``references`` (or ``truths``), garment measures where ``warped`` has the warped garment."""
    scores = Scores()
    result_files = images_in(results)
    truth_files = images_in(truths) if truths else {}
    warped_files = images_in(warped) if warped and warped.is_dir() else {}
    lpips_ready = lpips_weights_path(lpips_net).is_file()
    lpips = Lpips(lpips_net, device) if lpips_ready else None
    for name, path in result_files.items():
        result = read_rgb(path)
        if name in truth_files:
            truth = read_rgb(truth_files[name])
            if truth.shape != result.shape:
                result_for_truth = cv2.resize(result, truth.shape[1::-1], interpolation=cv2.INTER_AREA)
            else:
                result_for_truth = result
            scores.add(name, "ssim", ssim(result_for_truth, truth))
            scores.add(name, "lpips", lpips(result_for_truth, truth) if lpips else None)
        if name in warped_files:
            layer = read_rgb(warped_files[name], mode="RGBA")
            if layer.shape[:2] != result.shape[:2]:
                layer = cv2.resize(layer, result.shape[1::-1], interpolation=cv2.INTER_AREA)
            scores.add(name, "print_recall", print_recall(result, layer))
            scores.add(name, "colour_de00", colour_difference(result, layer))
            scores.add(name, "garment_lpips", garment_lpips(result, layer, lpips) if lpips else None)

    skipped = f"skipped: weights not cached ({FETCH_HINT})"
    for metric in ("ssim", "lpips", "print_recall", "colour_de00", "garment_lpips"):
        value = scores.mean(metric)
        if value is not None:
            scores.summary[metric] = value
        elif metric in ("lpips", "garment_lpips") and not lpips_ready and (truth_files or warped_files):
            scores.summary[metric] = f"{skipped}, LPIPS backbone {lpips_net}"
    reference_dir = references or truths
    if reference_dir is not None:
        if inception_path(weights_dir).is_file():
            fid, kid = fid_kid(
                list(result_files.values()), list(images_in(reference_dir).values()), weights_dir, device
            )
            scores.summary["fid"], scores.summary["kid_x1000"] = fid, kid
        else:
            scores.summary["fid"] = scores.summary["kid_x1000"] = f"{skipped}, Inception"
    return scores


def write_csv(scores: Scores, path: Path) -> None:
    metrics = sorted({metric for row in scores.per_image.values() for metric in row})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *metrics])
        for name, row in sorted(scores.per_image.items()):
            writer.writerow(
                [name, *("" if row.get(metric) is None else f"{row[metric]:.5f}" for metric in metrics)]
            )


def markdown(scores: Scores, count: int) -> str:
    lines = [f"| metric | value ({count} images) |", "|---|---|"]
    for metric, value in scores.summary.items():
        lines.append(f"| {metric} | {value:.4f} |" if isinstance(value, float) else f"| {metric} | {value} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", type=Path, help="VITON-HD-style folder (image/, cloth/): run our try-on")
    source.add_argument("--results", type=Path, help="score existing results (named like the ground truth)")
    parser.add_argument("--ground-truth", type=Path, help="with --results: the ground-truth photos (paired)")
    parser.add_argument(
        "--references", type=Path, help="FID/KID reference photos (default: the ground truth)"
    )
    parser.add_argument(
        "--warped", type=Path, help="with --results: warped garments (RGBA) for garment measures"
    )
    parser.add_argument("--mode", choices=["paired", "unpaired"], default="paired")
    parser.add_argument("--pairs", type=Path, help="unpaired pairs file (VITON-HD test_pairs.txt)")
    parser.add_argument(
        "--out", type=Path, default=Path("/tmp/tryon-eval"), help="where results and scores go"
    )
    parser.add_argument("--backend", choices=["lite", "full", "auto"], default="auto")
    parser.add_argument("--category", choices=[c.value for c in GarmentCategory], default="upper_body")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lpips-net", choices=sorted(LPIPS_BACKBONES), default="squeeze")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR, help="clean-fid Inception")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--fetch-weights", action="store_true", help="download the metric weights and exit")
    args = parser.parse_args(argv)

    if args.fetch_weights:
        for path in fetch_weights(args.weights_dir, [args.lpips_net]):
            print(f"cached {path}")
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.dataset:
        pairs = dataset_pairs(args.dataset, args.mode, args.pairs, args.limit)
        if not pairs:
            parser.error(f"no (person, garment) pairs found under {args.dataset}")
        run_pipeline(pairs, args.out, args.backend, GarmentCategory(args.category), args.seed)
        results, warped = args.out / "result", args.out / "warped"
        truths = args.dataset / "image" if args.mode == "paired" else None
        references = args.references or (args.dataset / "image" if args.mode == "unpaired" else None)
    elif args.results:
        results, warped, truths, references = args.results, args.warped, args.ground_truth, args.references
    else:
        parser.error("give --dataset (run and score), --results (score only) or --fetch-weights")
    scores = evaluate(
        results,
        truths=truths,
        references=references,
        warped=warped,
        lpips_net=args.lpips_net,
        weights_dir=args.weights_dir,
        device=device,
    )
    write_csv(scores, args.out / "scores.csv")
    where = args.out / "scores.csv"
    print(f"# try-on quality ({args.mode}; LPIPS backbone {args.lpips_net}; per image: {where})")
    print(markdown(scores, len(scores.per_image)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
