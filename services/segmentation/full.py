"""Full segmentation: Segformer B2 fine-tuned on ATR clothes (mattmdjaga/segformer_b2_clothes).

The model predicts the 18 :class:`~tryon.types.ClothesLabel` classes directly; its logits (a quarter of the
512x512 input) are upsampled to the photo's size before the argmax, so label edges follow the photo rather
than a blocky grid. The clothing / face / person masks are then derived from the label map exactly as
:func:`masks_from_label_map` says, the same contract as the lite backend.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tryon import models as model_registry
from tryon.settings import ModelSettings
from tryon.types import (
    BackendInfo,
    ClothesLabel,
    GarmentCategory,
    Mask,
    ModelInfo,
    SegmentationInput,
    SegmentationOutput,
    StageInputError,
)

#: The garment labels each category replaces. An upper-body garment also replaces a dress (its top is what
#: the new garment covers; leaving it would leave nothing to inpaint); a dress replaces everything worn.
CLOTHING_LABELS: dict[GarmentCategory, tuple[ClothesLabel, ...]] = {
    GarmentCategory.UPPER_BODY: (ClothesLabel.UPPER_CLOTHES, ClothesLabel.DRESS),
    GarmentCategory.LOWER_BODY: (ClothesLabel.PANTS, ClothesLabel.SKIRT),
    GarmentCategory.DRESS: (
        ClothesLabel.DRESS,
        ClothesLabel.UPPER_CLOTHES,
        ClothesLabel.SKIRT,
        ClothesLabel.PANTS,
    ),
}
FACE_LABELS = (ClothesLabel.FACE, ClothesLabel.SUNGLASSES)
#: Never painted over: the dilated clothing mask stops at the face, hair and headwear.
PROTECTED_LABELS = (ClothesLabel.FACE, ClothesLabel.SUNGLASSES, ClothesLabel.HAIR, ClothesLabel.HAT)
#: The clothing mask grows by this fraction of the long side, so a garment cut differently from the one worn
#: (a wider collar, a looser fit) has room, and the seam is generated rather than pasted.
CLOTHING_DILATION = 0.01
WARMUP_SIZE = (512, 384)


def masks_from_label_map(
    label_map: npt.NDArray[np.uint8], category: GarmentCategory
) -> tuple[Mask, Mask, Mask]:
    """``(clothing_mask, face_mask, person_mask)`` as 0/255 uint8 masks from a ClothesLabel map."""
    clothing = np.isin(label_map, CLOTHING_LABELS[category])
    radius = max(2, round(CLOTHING_DILATION * max(label_map.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = cv2.dilate(clothing.astype(np.uint8), kernel).astype(bool)
    clothing_mask = grown & ~np.isin(label_map, PROTECTED_LABELS)
    face_mask = np.isin(label_map, FACE_LABELS)
    person_mask = label_map != ClothesLabel.BACKGROUND
    return (
        clothing_mask.astype(np.uint8) * np.uint8(255),
        face_mask.astype(np.uint8) * np.uint8(255),
        person_mask.astype(np.uint8) * np.uint8(255),
    )


class FullSegmentation:
    """Segformer clothes parsing on CUDA (fp16/bf16) or CPU (fp32)."""

    def __init__(self, models: ModelSettings) -> None:
        self.models = models
        self._model: Any = None
        self._processor: Any = None
        self._device = "cpu"
        self._dtype: Any = None
        self._lock = threading.Lock()  # one forward pass at a time per device

    def setup(self) -> None:
        import torch
        from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

        directory = model_registry.require_stage("segmentation", self.models)["segformer"]
        self._device = model_registry.resolve_device(self.models)
        self._dtype = getattr(torch, model_registry.compute_dtype(self.models, self._device))
        self._processor = SegformerImageProcessor.from_pretrained(directory, local_files_only=True)
        model = SegformerForSemanticSegmentation.from_pretrained(
            directory, dtype=self._dtype, local_files_only=True
        )
        self._model = model.to(self._device).eval()
        self.run(SegmentationInput(person=np.full((*WARMUP_SIZE, 3), 128, np.uint8)))

    def run(self, inputs: SegmentationInput, /) -> SegmentationOutput:
        person = inputs.person
        if person.ndim != 3 or person.shape[2] != 3 or person.dtype != np.uint8:
            raise StageInputError("person: expected a uint8 RGB image (H, W, 3)", field="person")
        label_map = self.predict_labels(person)
        clothing_mask, face_mask, person_mask = masks_from_label_map(label_map, inputs.category)
        return SegmentationOutput(
            label_map=label_map, clothing_mask=clothing_mask, face_mask=face_mask, person_mask=person_mask
        )

    def predict_labels(self, person: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The ClothesLabel of every pixel of ``person``."""
        if self._model is None:
            raise RuntimeError("FullSegmentation.setup() must run before run()")
        import torch

        height, width = person.shape[:2]
        with self._lock, torch.inference_mode():
            pixel_values = self._processor(images=person, return_tensors="pt")["pixel_values"]
            logits = self._model(pixel_values=pixel_values.to(self._device, self._dtype)).logits
            # Upsample the class scores (not the labels) so boundaries are interpolated, then argmax.
            upsampled = torch.nn.functional.interpolate(
                logits.float(), size=(height, width), mode="bilinear", align_corners=False
            )
            labels = upsampled.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
        return labels

    def info(self) -> BackendInfo:
        device = str(next(self._model.parameters()).device) if self._model is not None else self._device
        return BackendInfo(
            stage="segmentation",
            backend="full",
            device=device,
            models=(ModelInfo(name="segformer", source=self.models.segformer_model),),
        )
