"""Input validation written once, on the input types (BlendInput.validate, InpaintInput.validate)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tryon.types import BlendInput, GenerationOptions, InpaintInput, StageInputError

H, W = 40, 30


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[10:20, 5:25] = 255
    return mask


PERSON = np.zeros((H, W, 3), np.uint8)
BLEND = BlendInput(
    person=PERSON, generated=PERSON, clothing_mask=_mask(), face_mask=np.zeros((H, W), np.uint8)
)
INPAINT = InpaintInput(
    person=PERSON, clothing_mask=_mask(), warped_garment=np.zeros((H, W, 4), np.uint8), pose_image=PERSON
)


@pytest.mark.parametrize(
    ("inputs", "change", "field"),
    [
        (BLEND, {"person": np.zeros((H, W), np.uint8)}, "person"),
        (BLEND, {"generated": np.zeros((H, W + 1, 3), np.uint8)}, "generated"),
        (BLEND, {"face_mask": np.zeros((H, W), np.float32)}, "face_mask"),
        (BLEND, {"clothing_mask": np.zeros((H, W), np.uint8)}, "clothing_mask"),
        (INPAINT, {"warped_garment": np.zeros((H, W, 3), np.uint8)}, "warped_garment"),
        (INPAINT, {"pose_image": None}, "pose_image"),
        (INPAINT, {"category": "hat"}, "category"),
        (INPAINT, {"options": GenerationOptions(steps=0)}, "options.steps"),
        (INPAINT, {"clothing_mask": np.full((H, W), 100, np.uint8)}, "clothing_mask"),
    ],
)
def test_validate_names_the_bad_field(inputs: object, change: dict, field: str) -> None:
    inputs.validate()  # the valid original passes
    with pytest.raises(StageInputError) as error:
        dataclasses.replace(inputs, **change).validate()
    assert error.value.field == field
