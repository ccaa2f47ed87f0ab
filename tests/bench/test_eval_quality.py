"""bench/eval_quality.py on tiny synthetic results: the weight-free metrics for real, the weighted ones
reported as skipped (never faked) when their backbone weights are not cached."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPT_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(SCRIPT_DIR))
import eval_quality  # noqa: E402

from tryon import imaging  # noqa: E402

SIZE = (160, 120)  # height, width


def _printed_garment() -> np.ndarray:
    """An RGBA garment layer with a logo and text: something SIFT finds keypoints on."""
    height, width = SIZE
    layer = np.zeros((height, width, 4), np.uint8)
    layer[30:140, 15:105] = (40, 70, 180, 255)
    cv2.putText(layer, "TRY", (22, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (250, 240, 60, 255), 3)
    cv2.circle(layer, (60, 110), 14, (240, 240, 240, 255), -1)
    cv2.rectangle(layer, (30, 40), (52, 55), (200, 30, 30, 255), -1)
    return layer


def _person() -> np.ndarray:
    height, width = SIZE
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([90 + 0.5 * xs, 120 + 0.3 * ys, 100 + 0.2 * (xs + ys)], axis=-1).astype(np.uint8)


def _composite(person: np.ndarray, layer: np.ndarray) -> np.ndarray:
    alpha = layer[..., 3:4].astype(np.float32) / 255.0
    return (person * (1 - alpha) + layer[..., :3] * alpha + 0.5).astype(np.uint8)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(imaging.encode_png(image))


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """results/, truth/, warped/: "kept" keeps the garment; "lost" blurred its print and shifted its hue."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached LPIPS backbone here
    person, layer = _person(), _printed_garment()
    kept = _composite(person, layer)
    lost_layer = layer.copy()
    lost_layer[..., :3] = cv2.GaussianBlur(layer[..., :3], (0, 0), 3)[..., ::-1]  # blurred, R and B swapped
    lost = _composite(person, lost_layer)
    for name, result in (("kept", kept), ("lost", lost)):
        _write(tmp_path / "results" / f"{name}.png", result)
        _write(tmp_path / "truth" / f"{name}.png", kept)  # the ground truth wears the garment as uploaded
        _write(tmp_path / "warped" / f"{name}.png", layer)
    return tmp_path


def test_paired_and_garment_metrics_separate_a_kept_garment_from_a_lost_one(folders: Path) -> None:
    scores = eval_quality.evaluate(
        folders / "results",
        truths=folders / "truth",
        references=None,
        warped=folders / "warped",
        lpips_net="squeeze",
        weights_dir=folders / "no-weights",
        device="cpu",
    )
    kept, lost = scores.per_image["kept"], scores.per_image["lost"]
    assert kept["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert lost["ssim"] < 0.9
    assert kept["print_recall"] > 0.9 and lost["print_recall"] < 0.3
    assert kept["colour_de00"] < 1.0 < 10.0 < lost["colour_de00"]
    assert scores.summary["ssim"] == pytest.approx((kept["ssim"] + lost["ssim"]) / 2)
    # No weights on disk: skipped, with the fix, never a made-up number.
    for metric in ("lpips", "garment_lpips", "fid", "kid_x1000"):
        assert "skipped" in str(scores.summary[metric]) and "--fetch-weights" in str(scores.summary[metric])
    assert kept["lpips"] is None


def test_command_line_scores_existing_results_and_writes_the_csv(
    folders: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = eval_quality.main(
        [
            "--results", str(folders / "results"),
            "--ground-truth", str(folders / "truth"),
            "--warped", str(folders / "warped"),
            "--out", str(folders / "out"),
            "--weights-dir", str(folders / "no-weights"),
            "--device", "cpu",
        ]
    )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "| ssim |" in table and "| print_recall |" in table and "skipped" in table
    with (folders / "out" / "scores.csv").open() as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"kept", "lost"} and float(rows["kept"]["ssim"]) > float(rows["lost"]["ssim"])


def test_paired_and_unpaired_dataset_pairs(tmp_path: Path) -> None:
    for folder, names in (("image", ["a", "b", "c"]), ("cloth", ["a", "b", "d"])):
        for name in names:
            _write(tmp_path / folder / f"{name}.jpg", _person())
    paired = eval_quality.dataset_pairs(tmp_path, "paired", None, None)
    assert [(person.stem, garment.stem) for person, garment in paired] == [("a", "a"), ("b", "b")]
    (tmp_path / "pairs.txt").write_text("a.jpg d.jpg\nc.jpg b.jpg\n")
    unpaired = eval_quality.dataset_pairs(tmp_path, "unpaired", tmp_path / "pairs.txt", 1)
    assert [(person.name, garment.name) for person, garment in unpaired] == [("a.jpg", "d.jpg")]


def test_a_plain_garment_has_no_print_to_measure() -> None:
    layer = np.zeros((*SIZE, 4), np.uint8)
    layer[30:140, 15:105] = (40, 70, 180, 255)
    assert eval_quality.print_recall(_composite(_person(), layer), layer) is None


def test_dataset_run_with_the_lite_backend_scores_our_own_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end on a one-pair VITON-HD-style folder: the pipeline runs, results and warped garments are
    written, and paired SSIM plus the garment measures come out (LPIPS/FID skipped: no weights here)."""
    from tests.imagegen import draw_garment, person_photo

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    person = cv2.resize(person_photo(), (384, 384), interpolation=cv2.INTER_AREA)
    _write(tmp_path / "data" / "image" / "00001_00.jpg", person)
    _write(tmp_path / "data" / "cloth" / "00001_00.jpg", draw_garment(size=(384, 512)))
    out = tmp_path / "out"
    arguments = ["--dataset", str(tmp_path / "data"), "--backend", "lite", "--out", str(out)]
    assert eval_quality.main([*arguments, "--weights-dir", str(tmp_path / "none"), "--device", "cpu"]) == 0
    assert (out / "result" / "00001_00.png").is_file() and (out / "warped" / "00001_00.png").is_file()
    table = capsys.readouterr().out
    assert "| ssim |" in table and "| colour_de00 |" in table and "skipped" in table
    with (out / "scores.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert 0.3 < float(row["ssim"]) < 1.0  # the garment changed, the rest of the photo did not
