"""Every servicer scales what it decodes down to the working resolution before its backend sees it.

A 4 MP photo (or a 64 MP one) costs a stage no more memory or time than a 1024 px one: the servicers are
called in process with recording backends, so only the decode-and-scale step is measured here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from services.blend.servicer import BlendServicer
from services.inpaint.servicer import InpaintServicer
from services.pose.servicer import PoseServicer
from services.segmentation.servicer import SegmentationServicer
from services.warp.servicer import WarpServicer
from tryon import imaging, protocol
from tryon.types import (
    NUM_KEYPOINTS,
    BackendInfo,
    BlendOutput,
    InpaintOutput,
    PoseOutput,
    SegmentationOutput,
    WarpOutput,
)
from tryon.v1 import blend_pb2, common_pb2, inpaint_pb2, pose_pb2, segmentation_pb2, warp_pb2

HEIGHT, WIDTH = 1200, 1600  # larger than the working resolution
WORKING = (768, 1024)


class Recorder:
    """A backend that records the shape of every array it is given and answers with blank outputs."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.shapes: dict[str, tuple[int, ...]] = {}

    def setup(self) -> None: ...

    def info(self) -> BackendInfo:
        return BackendInfo(stage="test", backend="lite", device="cpu")

    def run(self, inputs: Any, /) -> Any:
        self.shapes = {k: v.shape for k, v in vars(inputs).items() if isinstance(v, np.ndarray)}
        return self.answer(inputs)


def _image(shape: tuple[int, ...], wire: protocol.WireFormat = "raw") -> common_pb2.Image:
    pixels = np.broadcast_to(np.arange(shape[1], dtype=np.uint8)[:, None], shape[1:]).copy()
    pixels = np.broadcast_to(pixels, shape).copy()
    return protocol.image_to_proto(pixels, wire)


def _mask(wire: protocol.WireFormat = "raw") -> common_pb2.Image:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[HEIGHT // 4 : HEIGHT // 2, WIDTH // 4 : WIDTH // 2] = 255
    return protocol.image_to_proto(mask, wire)


def _blank(person: np.ndarray) -> np.ndarray:
    return np.zeros(person.shape[:2], np.uint8)


@pytest.mark.parametrize("wire", ["raw", "png"])
def test_people_reach_segmentation_and_pose_at_the_working_resolution(wire: protocol.WireFormat) -> None:
    segmentation = Recorder(
        lambda i: SegmentationOutput(_blank(i.person), _blank(i.person), _blank(i.person), _blank(i.person))
    )
    reply = SegmentationServicer(segmentation).Segment(
        segmentation_pb2.SegmentRequest(person=_image((HEIGHT, WIDTH, 3), wire)), None
    )
    assert segmentation.shapes == {"person": (*WORKING, 3)}
    assert (reply.clothing_mask.height, reply.clothing_mask.width) == WORKING  # answered in that frame

    pose = Recorder(lambda i: PoseOutput(np.zeros((NUM_KEYPOINTS, 3), np.float32), np.zeros_like(i.person)))
    PoseServicer(pose).Estimate(pose_pb2.EstimatePoseRequest(person=_image((HEIGHT, WIDTH, 3), wire)), None)
    assert pose.shapes["person"] == (*WORKING, 3)


def test_garments_reach_warp_at_the_garment_limit() -> None:
    warp = Recorder(lambda i: WarpOutput(np.zeros((*i.target_size, 4), np.uint8)))
    request = warp_pb2.WarpGarmentRequest(
        garment=_image((1800, 1200, 4)),
        pose=protocol.keypoints_to_proto(np.zeros((NUM_KEYPOINTS, 3), np.float32)),
        target_width=384,
        target_height=512,
    )
    servicer = WarpServicer(warp)
    servicer.WarpGarment(request, None)
    assert warp.shapes["garment"] == (imaging.GARMENT_LONG_SIDE, 683, 4)


@pytest.mark.parametrize("wire", ["raw", "png"])
def test_every_image_of_inpaint_and_blend_is_scaled_alike(wire: protocol.WireFormat) -> None:
    inpaint = Recorder(lambda i: InpaintOutput(i.person))
    reply = InpaintServicer(inpaint).Inpaint(
        inpaint_pb2.InpaintRequest(
            person=_image((HEIGHT, WIDTH, 3), wire),
            clothing_mask=_mask(wire),
            warped_garment=_image((HEIGHT, WIDTH, 4), wire),
            pose_image=_image((HEIGHT, WIDTH, 3), wire),
        ),
        None,
    )
    assert set(inpaint.shapes) == {"person", "clothing_mask", "warped_garment", "pose_image"}
    assert all(shape[:2] == WORKING for shape in inpaint.shapes.values()), inpaint.shapes
    assert (reply.image.height, reply.image.width) == WORKING

    blend = Recorder(lambda i: BlendOutput(i.person))
    BlendServicer(blend).Blend(
        blend_pb2.BlendRequest(
            person=_image((HEIGHT, WIDTH, 3), wire),
            generated=_image((HEIGHT, WIDTH, 3), wire),
            clothing_mask=_mask(wire),
            face_mask=_mask(wire),
        ),
        None,
    )
    assert all(shape[:2] == WORKING for shape in blend.shapes.values()), blend.shapes
