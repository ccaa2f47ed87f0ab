"""bench/eval_lite.py's measures that are its own (the rest are :mod:`tryon.vision.fidelity`'s, tested
with the warp): the warped garment's whole area, for the print's scale against the silhouette's."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SCRIPT_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(SCRIPT_DIR))
import eval_lite  # noqa: E402

from services.warp.backend import GarmentWarper  # noqa: E402
from tests.imagegen import draw_garment  # noqa: E402
from tests.services.warp.test_fidelity import HIP_Y, TARGET, _keypoints  # noqa: E402
from tryon.types import GarmentCategory, WarpInput  # noqa: E402


@pytest.fixture(scope="module")
def warper() -> GarmentWarper:
    return GarmentWarper()


def _in_frame_area(warper: GarmentWarper, garment: np.ndarray, size: tuple[int, int]) -> int:
    warped = warper.run(WarpInput(garment, _keypoints(), size, GarmentCategory.UPPER_BODY)).warped_garment
    return int((warped[..., 3] > 127).sum())


def test_the_warped_area_counts_the_garment_hanging_out_of_the_photo(warper: GarmentWarper) -> None:
    """A person photo cut at the hips shows a top's upper part only: the warped area in its frame made
    the garment look smaller than it is and its print too large for it (1.34 times, on a sample pair)."""
    garment = draw_garment(GarmentCategory.UPPER_BODY)
    pipeline = SimpleNamespace(backends={"warp": warper})
    whole = _in_frame_area(warper, garment, TARGET)  # the full frame holds the whole top
    cut_at_hips = (HIP_Y, TARGET[1])
    assert _in_frame_area(warper, garment, cut_at_hips) < 0.9 * whole  # the premise: part of it is cut
    for size in (TARGET, cut_at_hips):
        area = eval_lite.warped_area(pipeline, garment, _keypoints(), size, GarmentCategory.UPPER_BODY)  # type: ignore[arg-type]
        assert abs(area - whole) <= 0.01 * whole
