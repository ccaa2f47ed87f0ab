"""Image-size helpers every stage uses: the one "shrink so the long side is at most N" formula."""

from __future__ import annotations

from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt

ScalarT = TypeVar("ScalarT", bound=np.generic)


def shrink_factor(height: int, width: int, long_side: int) -> float:
    """The factor (<= 1) that brings an image of ``height`` x ``width`` to a long side of ``long_side``."""
    return min(1.0, long_side / max(height, width, 1))


def shrunk_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """``(height, width)`` shrunk so the long side is at most ``long_side`` (never enlarged, >= 1 px)."""
    scale = shrink_factor(height, width, long_side)
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale(image: npt.NDArray[ScalarT], long_side: int) -> npt.NDArray[ScalarT]:
    """``image`` shrunk (area-averaged) so its long side is at most ``long_side``; never enlarged."""
    height, width = image.shape[:2]
    new_height, new_width = shrunk_size(height, width, long_side)
    if (new_height, new_width) == (height, width):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
