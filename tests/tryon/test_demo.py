"""The built-in example: what ships, and `tryon demo` as a new user runs it (subprocess, lite, offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from tryon import demo, imaging
from tryon.types import GarmentCategory, StageInputError

RUN_AND_CHECK_TORCH = (
    "import sys; from tryon.cli import main; code = main(sys.argv[1:]); "
    "print('TORCH_IMPORTED' if 'torch' in sys.modules else 'TORCH_ABSENT'); sys.exit(code)"
)


def test_the_shipped_person_is_the_public_domain_astronaut_pixel_for_pixel() -> None:
    np.testing.assert_array_equal(demo.example_person(), skimage.data.astronaut())


def test_the_example_garment_is_a_product_photo_with_a_print() -> None:
    garment = demo.example_garment(GarmentCategory.UPPER_BODY)
    assert garment.shape == (1024, 768, 3)
    corners = garment[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (np.abs(corners.astype(int) - (236, 236, 233)) <= 2).all()  # plain light background
    blue = (np.abs(garment.astype(int) - (38, 70, 140)).sum(axis=2) < 60).mean()
    yellow = (np.abs(garment.astype(int) - (244, 196, 48)).sum(axis=2) < 40).mean()
    assert 0.2 < blue < 0.5 and 0.005 < yellow < 0.05


def test_categories_the_example_person_cannot_show_are_refused() -> None:
    with pytest.raises(StageInputError, match="upper body"):
        demo.example_garment(GarmentCategory.LOWER_BODY)


def test_side_by_side_holds_the_three_panels_in_order() -> None:
    person = np.full((100, 50, 3), 10, np.uint8)
    garment = np.zeros((200, 100, 4), np.uint8)  # transparent: flattened to white
    result = np.full((100, 50, 3), 200, np.uint8)
    sheet = demo.side_by_side(person, garment, result, gap=4)
    assert sheet.shape == (100, 50 + 4 + 50 + 4 + 50, 3)
    assert (sheet[:, :50] == 10).all() and (sheet[:, 58:108] == 255).all() and (sheet[:, -50:] == 200).all()


def test_tryon_demo_runs_offline_on_the_lite_backend(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    completed = subprocess.run(
        [sys.executable, "-c", RUN_AND_CHECK_TORCH, "demo", "-o", str(out)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "TORCH_ABSENT" in completed.stdout
    assert str(out / "side_by_side.png") in completed.stdout
    result = imaging.decode_image((out / "result.png").read_bytes())
    person = imaging.decode_image((out / "person.png").read_bytes())
    assert result.shape == person.shape == (1024, 1024, 3)
    # The try-on changed the torso and kept the face.
    assert np.abs(result.astype(int) - person).mean(axis=2)[600:900, 300:700].mean() > 20
    np.testing.assert_array_equal(result[100:250, 380:620], person[100:250, 380:620])
    sheet = imaging.decode_image((out / "side_by_side.png").read_bytes())
    assert sheet.shape[0] == 1024
    np.testing.assert_array_equal(sheet[:, :1024], person)
    np.testing.assert_array_equal(sheet[:, -1024:], result)
    garment_panel = sheet[:, 1024 + 8 : -1024 - 8]
    assert garment_panel.shape[1] == 768
    assert (np.abs(garment_panel.astype(int) - (38, 70, 140)).sum(axis=2) < 60).mean() > 0.2


def test_tryon_demo_refuses_an_unwritable_directory_before_running(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    completed = subprocess.run(
        [sys.executable, "-m", "tryon.cli", "demo", "-o", str(blocker / "sub")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1].startswith("tryon: error: output: cannot write")
