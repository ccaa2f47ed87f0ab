"""OpenPose-style rendering of COCO-18 keypoints, pixel-identical to controlnet_aux 0.0.10.

The SDXL ControlNet (thibaud/controlnet-openpose-sdxl-1.0) was trained on controlnet_aux's renderings, so
both pose backends draw with this copy of its ``draw_bodypose`` (limbs as filled ellipses at 60 % colour,
then joints as radius-4 discs) on a black canvas. It is re-implemented rather than imported because
importing controlnet_aux pulls in torch, which the lite path must not load.

It lives in the shared package because the image is drawn on both sides of the wire: the pose stage draws
it for its output, and the gRPC chain sends only the 18 keypoints on to the inpaint stage, whose servicer
draws the same pixels again (the pose client does too, for its ``PoseOutput``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from tryon.types import NUM_KEYPOINTS, RGBImage

STICK_WIDTH = 4
JOINT_RADIUS = 4

#: Limbs as 1-based COCO-18 index pairs, in controlnet_aux's drawing order (the order decides overlaps).
LIMB_SEQUENCE: tuple[tuple[int, int], ...] = (
    (2, 3), (2, 6), (3, 4), (4, 5),
    (6, 7), (7, 8), (2, 9), (9, 10),
    (10, 11), (2, 12), (12, 13), (13, 14),
    (2, 1), (1, 15), (15, 17), (1, 16),
    (16, 18),
)  # fmt: skip

#: One RGB colour per limb (the first 17) and per keypoint (all 18).
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip


def draw_openpose(keypoints: npt.ArrayLike, height: int, width: int) -> RGBImage:
    """The OpenPose body rendering of ``(18, 3)`` pixel keypoints on a black ``height`` x ``width`` canvas.

    Keypoints with confidence 0 are skipped, as are the limbs that touch them.
    """
    points = np.asarray(keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    # controlnet_aux works on coordinates normalised by the canvas size and scales them back; doing the
    # same arithmetic keeps the int() truncations, hence the pixels, identical.
    normalised: list[tuple[float, float] | None] = [
        (float(x) / width, float(y) / height) if score > 0 else None for x, y, score in points
    ]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)

    for (first, second), color in zip(LIMB_SEQUENCE, COLORS, strict=False):
        start, end = normalised[first - 1], normalised[second - 1]
        if start is None or end is None:
            continue
        xs = np.array([start[0], end[0]]) * float(width)
        ys = np.array([start[1], end[1]]) * float(height)
        mean_x, mean_y = np.mean(xs), np.mean(ys)
        length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polygon = cv2.ellipse2Poly(
            (int(mean_x), int(mean_y)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1
        )
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in color])

    for point, color in zip(normalised, COLORS, strict=True):
        if point is None:
            continue
        center = (int(point[0] * width), int(point[1] * height))
        cv2.circle(canvas, center, JOINT_RADIUS, color, thickness=-1)
    return canvas
