"""Lite segmentation: MediaPipe's bundled models plus body geometry, no weights to download.

* person mask: MediaPipe Selfie Segmentation (general model) on a ~384 px copy, thresholded at 0.5;
* face mask: the FaceMesh face oval, found on a crop around the head the pose landmarks point at (the face
  detector behind FaceMesh wants a face that fills a good part of its 128 px input); an ellipse around the
  eyes, ears and nose when FaceMesh finds nothing;
* clothing mask and label map: regions built from the MediaPipe Pose landmarks of the shared detector
  (:func:`~services.pose.mediapipe_landmarks.shared_pose_landmarker`): the torso between the shoulders and
  hips, arm and leg capsules, clipped to the (slightly grown) person mask.

The region geometry runs at :data:`WORK_LONG_SIDE` pixels and is upsampled (linear + threshold) to the
photo, so the cost hardly depends on the photo's size. Everything is deterministic.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.pose.lite import MODEL_SOURCE, validate_person_image
from services.pose.mediapipe_landmarks import (
    MediaPipePoseLandmarker,
    PoseLandmarks,
    shared_pose_landmarker,
)
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

WORK_LONG_SIDE = 384
PERSON_THRESHOLD = 0.5
FACE_CROP_SIZE = 192
#: MediaPipe Pose landmark indices used here.
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 2, 5, 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_PINKY, RIGHT_PINKY, LEFT_INDEX, RIGHT_INDEX = 17, 18, 19, 20
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
HEAD_LANDMARKS = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR)
#: A body landmark this visible is trusted for the garment geometry; MediaPipe's extrapolated positions of
#: out-of-frame joints (hips and knees of a half-body photo) are still good enough, so they are used too.
HEAD_MIN_VISIBILITY = 0.5

# Region proportions, as fractions of the shoulder width (sw), hip-joint width (hw) or torso length.
SHOULDER_OUTWARD = 0.10  # sw: the shoulder joint lies inside the garment's shoulder seam
SHOULDER_UP = 0.08  # sw
HIP_OUTWARD = 0.35  # hw: the hip joints lie well inside the body's outline
HIP_DOWN = 0.04  # torso length
ARM_RADIUS = 0.28  # sw
FOREARM_RADIUS = 0.15  # sw: hands resting on trousers are cut out of them, the trousers beside them kept
LEG_RADIUS = 0.55  # hw
WAIST_T = 0.8  # torso length below the shoulders where trousers start
UPPER_HEM_T = 1.0  # how far below the hip line the worn top is allowed to reach
NECK_HALF_WIDTH = 0.3  # sw
HEAD_ABOVE = 0.15  # sw above the shoulder line: everything higher is head, never clothing
FACE_GUARD = 0.10  # sw: the clothing mask keeps this far from the face
PERSON_GROW = 0.02  # long side: the person mask is grown by this before clipping the garment regions


@dataclass(frozen=True)
class BodyFrame:
    """Body measurements in work-resolution pixels, and per-pixel torso coordinates."""

    points: npt.NDArray[np.float64]  # (33, 2) landmarks
    shoulder_width: float
    hip_width: float
    torso_length: float
    along: npt.NDArray[np.float32]  # (h, w) distance below the shoulder line, in torso lengths
    across: npt.NDArray[np.float32]  # (h, w) signed pixels from the body's axis


def body_frame(points: npt.NDArray[np.float64], height: int, width: int) -> BodyFrame:
    shoulders_mid = (points[LEFT_SHOULDER] + points[RIGHT_SHOULDER]) / 2
    hips_mid = (points[LEFT_HIP] + points[RIGHT_HIP]) / 2
    shoulder_width = float(np.linalg.norm(points[LEFT_SHOULDER] - points[RIGHT_SHOULDER]))
    torso = hips_mid - shoulders_mid
    torso_length = float(np.linalg.norm(torso))
    # A side view squeezes the shoulders together; keep the regions a plausible width anyway.
    torso_length = max(torso_length, 0.8 * shoulder_width, 4.0)
    shoulder_width = max(shoulder_width, 0.45 * torso_length)
    hip_width = max(float(np.linalg.norm(points[LEFT_HIP] - points[RIGHT_HIP])), 0.5 * shoulder_width)
    down = torso / max(float(np.linalg.norm(torso)), 1e-6)
    if not np.all(np.isfinite(down)) or np.linalg.norm(torso) < 1e-3:
        down = np.array([0.0, 1.0])
    lateral = np.array([-down[1], down[0]])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - np.float32(shoulders_mid[0]), ys - np.float32(shoulders_mid[1])
    along = (dx * np.float32(down[0]) + dy * np.float32(down[1])) / np.float32(torso_length)
    across = dx * np.float32(lateral[0]) + dy * np.float32(lateral[1])
    return BodyFrame(points, shoulder_width, hip_width, torso_length, along, across)


def _capsules(shape: tuple[int, int], chains: list[list[npt.NDArray[np.float64]]], radius: float) -> Mask:
    """0/1 mask of thick round-capped polylines (OpenCV draws thick lines with round ends)."""
    canvas = np.zeros(shape, dtype=np.uint8)
    thickness = max(1, round(2 * radius))
    for chain in chains:
        for start, end in itertools.pairwise(chain):
            cv2.line(canvas, _pixel(start), _pixel(end), 1, thickness=thickness, lineType=cv2.LINE_8)
    return canvas


def _pixel(point: npt.NDArray[np.float64]) -> tuple[int, int]:
    # Clamp far-extrapolated landmarks so OpenCV's fixed-point drawing stays exact.
    x, y = np.clip(np.nan_to_num(point), -1e5, 1e5)
    return round(float(x)), round(float(y))


def _polygon(shape: tuple[int, int], corners: list[npt.NDArray[np.float64]]) -> Mask:
    canvas = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(canvas, [np.array([_pixel(corner) for corner in corners], dtype=np.int32)], 1)
    return canvas


def _outward(point: npt.NDArray[np.float64], other: npt.NDArray[np.float64], amount: float) -> Any:
    """``point`` moved ``amount`` pixels away from ``other`` along their line."""
    direction = point - other
    return point + direction / max(float(np.linalg.norm(direction)), 1e-6) * amount


@dataclass(frozen=True)
class BodyRegions:
    """Work-resolution 0/1 masks of the body parts the clothing masks and the label map are made of."""

    torso: Mask
    upper_band: Mask  # worn top: between the shoulder line and a little below the hips
    left_arm: Mask
    right_arm: Mask
    forearms: Mask  # thinner capsules elbow -> wrist -> hand, for the garments below the waist
    left_leg: Mask
    right_leg: Mask
    hips_to_knees: Mask
    below_waist: Mask  # from the waist to a little below the ankles
    shoulders_to_knees: Mask
    neck_and_head: Mask
    below_hips: Mask


def body_regions(frame: BodyFrame, shape: tuple[int, int]) -> BodyRegions:
    points, sw, hw, torso_length = frame.points, frame.shoulder_width, frame.hip_width, frame.torso_length
    up = points[LEFT_SHOULDER] + points[RIGHT_SHOULDER] - points[LEFT_HIP] - points[RIGHT_HIP]
    up = up / max(float(np.linalg.norm(up)), 1e-6)
    left_shoulder = _outward(points[LEFT_SHOULDER], points[RIGHT_SHOULDER], SHOULDER_OUTWARD * sw)
    right_shoulder = _outward(points[RIGHT_SHOULDER], points[LEFT_SHOULDER], SHOULDER_OUTWARD * sw)
    left_hip = _outward(points[LEFT_HIP], points[RIGHT_HIP], HIP_OUTWARD * hw)
    right_hip = _outward(points[RIGHT_HIP], points[LEFT_HIP], HIP_OUTWARD * hw)
    torso = _polygon(
        shape,
        [
            right_shoulder + up * SHOULDER_UP * sw,
            left_shoulder + up * SHOULDER_UP * sw,
            left_hip - up * HIP_DOWN * torso_length,
            right_hip - up * HIP_DOWN * torso_length,
        ],
    )
    arm_radius = ARM_RADIUS * sw
    # Each arm runs on to the middle of the hand, so hands resting on the hips stay out of the garment.
    left_hand = (points[LEFT_PINKY] + points[LEFT_INDEX]) / 2
    right_hand = (points[RIGHT_PINKY] + points[RIGHT_INDEX]) / 2
    left_arm = _capsules(
        shape, [[points[LEFT_SHOULDER], points[LEFT_ELBOW], points[LEFT_WRIST], left_hand]], arm_radius
    )
    right_arm = _capsules(
        shape, [[points[RIGHT_SHOULDER], points[RIGHT_ELBOW], points[RIGHT_WRIST], right_hand]], arm_radius
    )
    forearms = _capsules(
        shape,
        [
            [points[LEFT_ELBOW], points[LEFT_WRIST], left_hand],
            [points[RIGHT_ELBOW], points[RIGHT_WRIST], right_hand],
        ],
        FOREARM_RADIUS * sw,
    )
    leg_radius = LEG_RADIUS * hw
    left_leg = _capsules(shape, [[points[LEFT_HIP], points[LEFT_KNEE], points[LEFT_ANKLE]]], leg_radius)
    right_leg = _capsules(shape, [[points[RIGHT_HIP], points[RIGHT_KNEE], points[RIGHT_ANKLE]]], leg_radius)
    # Skirts and dresses hang across the gap between the thighs.
    left_knee = _outward(points[LEFT_KNEE], points[RIGHT_KNEE], 0.3 * hw)
    right_knee = _outward(points[RIGHT_KNEE], points[LEFT_KNEE], 0.3 * hw)
    hips_to_knees = _polygon(shape, [right_hip, left_hip, left_knee, right_knee])

    along, across = frame.along, frame.across
    ankles_t = _along_of(frame, [points[LEFT_ANKLE], points[RIGHT_ANKLE]]) + 0.05
    knees_t = _along_of(frame, [points[LEFT_KNEE], points[RIGHT_KNEE]]) + 0.1
    upper_band = (along >= 0) & (along <= UPPER_HEM_T)
    below_waist = (along >= WAIST_T) & (along <= ankles_t)
    shoulders_to_knees = (along >= 0) & (along <= knees_t)
    head_t = HEAD_ABOVE * sw / torso_length
    neck_and_head = ((along < 0) & (np.abs(across) < NECK_HALF_WIDTH * sw)) | (along < -head_t)
    as_u8 = np.uint8
    return BodyRegions(
        torso=torso,
        upper_band=upper_band.view(as_u8),
        left_arm=left_arm,
        right_arm=right_arm,
        forearms=forearms,
        left_leg=left_leg,
        right_leg=right_leg,
        hips_to_knees=hips_to_knees,
        below_waist=below_waist.view(as_u8),
        shoulders_to_knees=shoulders_to_knees.view(as_u8),
        neck_and_head=neck_and_head.view(as_u8),
        below_hips=(along > 1.0).view(as_u8),
    )


def _along_of(frame: BodyFrame, landmarks: list[npt.NDArray[np.float64]]) -> float:
    """The largest torso coordinate (distance below the shoulder line) of ``landmarks``."""
    points = frame.points
    shoulders_mid = (points[LEFT_SHOULDER] + points[RIGHT_SHOULDER]) / 2
    down = (points[LEFT_HIP] + points[RIGHT_HIP]) / 2 - shoulders_mid
    down = down / max(float(np.linalg.norm(down)), 1e-6)
    return max(float(np.dot(point - shoulders_mid, down)) for point in landmarks) / frame.torso_length


def _disc_kernel(radius: float) -> npt.NDArray[np.uint8]:
    size = 2 * max(1, round(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def clothing_region(
    regions: BodyRegions, category: GarmentCategory, person_grown: Mask, face_guard: Mask, person: Mask
) -> Mask:
    """0/1 work-resolution mask of where a ``category`` garment goes (and the garment it replaces)."""
    arms = regions.left_arm | regions.right_arm
    # The worn top: the person between the shoulder and hip lines, less the arms.
    worn_top = regions.upper_band & person & (1 - arms)
    if category is GarmentCategory.UPPER_BODY:
        region = regions.torso | worn_top
    elif category is GarmentCategory.LOWER_BODY:
        legs = regions.left_leg | regions.right_leg | regions.hips_to_knees
        worn_bottom = regions.below_waist & person
        region = ((legs & regions.below_waist) | worn_bottom) & (1 - regions.forearms)
    else:
        legs = (regions.left_leg | regions.right_leg) & regions.shoulders_to_knees
        worn_dress = regions.shoulders_to_knees & person
        skirt = (legs | regions.hips_to_knees | worn_dress) & ((1 - arms) | regions.below_hips)
        region = regions.torso | (skirt & (1 - regions.forearms))
    return region & person_grown & (1 - face_guard) & (1 - regions.neck_and_head)


def label_map_from_regions(
    regions: BodyRegions, category: GarmentCategory, clothing: Mask, face_center_y: float
) -> npt.NDArray[np.uint8]:
    """The work-resolution :class:`ClothesLabel` map of the body zones, before the background is cut.

    Every pixel gets the label of the body zone it lies in (the painting order decides overlaps); the
    caller sets the pixels outside the full-resolution person mask to BACKGROUND, so the label map and the
    person mask agree exactly despite the different resolutions.
    """
    shape = clothing.shape
    labels = np.full(shape, ClothesLabel.UPPER_CLOTHES, dtype=np.uint8)
    below_hips = regions.below_hips.astype(bool)
    labels[below_hips] = ClothesLabel.PANTS
    if category is not GarmentCategory.LOWER_BODY:
        labels[below_hips & regions.left_leg.astype(bool)] = ClothesLabel.LEFT_LEG
        labels[below_hips & regions.right_leg.astype(bool)] = ClothesLabel.RIGHT_LEG
    arms = (regions.left_arm | regions.right_arm).astype(bool)
    labels[regions.left_arm.astype(bool)] = ClothesLabel.LEFT_ARM
    labels[regions.right_arm.astype(bool)] = ClothesLabel.RIGHT_ARM
    clothing_label = {
        GarmentCategory.UPPER_BODY: ClothesLabel.UPPER_CLOTHES,
        GarmentCategory.LOWER_BODY: ClothesLabel.PANTS,
        GarmentCategory.DRESS: ClothesLabel.DRESS,
    }[category]
    labels[clothing.astype(bool)] = clothing_label
    # Hair: the head zone above the face's centre (and not a raised arm). The face itself is painted by
    # the caller at full resolution, so FACE labels and the face mask agree exactly.
    above_face_center = np.arange(shape[0], dtype=np.float32)[:, None] < face_center_y
    labels[above_face_center & regions.neck_and_head.astype(bool) & ~arms] = ClothesLabel.HAIR
    return labels


class LiteSegmentation:
    """Person / face / clothing masks and an approximate clothes label map from MediaPipe, on the CPU."""

    def __init__(self, landmarker: MediaPipePoseLandmarker | None = None) -> None:
        self._landmarker = landmarker or shared_pose_landmarker()
        self._selfie: Any = None
        self._face_mesh: Any = None
        self._face_oval: npt.NDArray[np.intp] | None = None
        self._lock = threading.Lock()  # the MediaPipe graphs are not re-entrant

    def setup(self) -> None:
        import mediapipe as mp

        with self._lock:
            if self._selfie is None:
                self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
                self._face_mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, min_detection_confidence=0.5
                )
                oval = mp.solutions.face_mesh.FACEMESH_FACE_OVAL
                self._face_oval = np.array(sorted({index for edge in oval for index in edge}), dtype=np.intp)
                blank = np.zeros((128, 128, 3), dtype=np.uint8)
                self._selfie.process(blank)
                self._face_mesh.process(blank)
        self._landmarker.setup()

    def run(self, inputs: SegmentationInput, /) -> SegmentationOutput:
        person_rgb = inputs.person
        validate_person_image(person_rgb)
        category = GarmentCategory(inputs.category)
        if self._selfie is None:
            self.setup()
        height, width = person_rgb.shape[:2]
        landmarks = self._landmarker.detect(person_rgb)
        if landmarks is None:
            raise StageInputError("no person found in the photo", field="person")

        scale = min(1.0, WORK_LONG_SIDE / max(height, width))
        work_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work_shape = (work_size[1], work_size[0])
        work_rgb = cv2.resize(person_rgb, work_size, interpolation=cv2.INTER_AREA)

        with self._lock:
            probability = self._selfie.process(work_rgb).segmentation_mask
            face_polygon = self._face_polygon(person_rgb, landmarks)
        if face_polygon is None:
            face_polygon = _face_ellipse(landmarks)

        face_full = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(face_full, [np.round(face_polygon).astype(np.int32)], 255)
        person_full = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        person_full = ((person_full > PERSON_THRESHOLD) | (face_full > 0)).astype(np.uint8) * 255

        # Work-resolution geometry.
        work_points = landmarks.points.astype(np.float64) * (work_size[0] / width, work_size[1] / height)
        frame = body_frame(work_points, *work_shape)
        regions = body_regions(frame, work_shape)
        person = (probability > PERSON_THRESHOLD).view(np.uint8)
        work_face = np.zeros(work_shape, dtype=np.uint8)
        cv2.fillPoly(work_face, [np.round(face_polygon * scale).astype(np.int32)], 1)
        person |= work_face
        person_grown = cv2.dilate(person, _disc_kernel(PERSON_GROW * max(work_shape)))
        face_guard = cv2.dilate(work_face, _disc_kernel(FACE_GUARD * frame.shoulder_width))
        clothing = clothing_region(regions, category, person_grown, face_guard, person)
        labels = label_map_from_regions(regions, category, clothing, float(face_polygon[:, 1].mean()) * scale)

        clothing_full = cv2.resize(clothing * 255, (width, height), interpolation=cv2.INTER_LINEAR)
        clothing_full = ((clothing_full > 127) & (face_full == 0)).astype(np.uint8) * 255
        label_map = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        label_map[person_full == 0] = ClothesLabel.BACKGROUND
        label_map[face_full > 0] = ClothesLabel.FACE
        return SegmentationOutput(
            label_map=label_map, clothing_mask=clothing_full, face_mask=face_full, person_mask=person_full
        )

    def _face_polygon(
        self, person_rgb: npt.NDArray[np.uint8], landmarks: PoseLandmarks
    ) -> npt.NDArray[np.float64] | None:
        """The FaceMesh face oval (convex hull, photo pixels) on a crop around the head, or None."""
        height, width = person_rgb.shape[:2]
        head = landmarks.points[list(HEAD_LANDMARKS)].astype(np.float64)
        center = head.mean(axis=0)
        shoulders = landmarks.points[[LEFT_SHOULDER, RIGHT_SHOULDER]].astype(np.float64)
        head_size = max(
            float(np.ptp(head[:, 0])),
            float(np.ptp(head[:, 1])),
            0.5 * float(np.linalg.norm(shoulders[0] - shoulders[1])),
            8.0,
        )
        half = 1.6 * head_size  # room for the whole head: FaceMesh's detector expects some context
        left, top = max(0, int(center[0] - half)), max(0, int(center[1] - half))
        right, bottom = min(width, int(center[0] + half)), min(height, int(center[1] + half))
        if right - left < 16 or bottom - top < 16:
            return None
        crop = person_rgb[top:bottom, left:right]
        crop_scale = FACE_CROP_SIZE / max(crop.shape[:2])
        crop_size = (max(1, round(crop.shape[1] * crop_scale)), max(1, round(crop.shape[0] * crop_scale)))
        interpolation = cv2.INTER_AREA if crop_scale < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(crop, crop_size, interpolation=interpolation)
        result = self._face_mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        oval = np.array([(marks[i].x, marks[i].y) for i in self._face_oval], dtype=np.float64)
        oval = oval * (crop_size[0], crop_size[1]) / crop_scale + (left, top)
        hull = cv2.convexHull(oval.astype(np.float32)).reshape(-1, 2)
        return hull.astype(np.float64)

    def info(self) -> BackendInfo:
        return BackendInfo(
            stage="segmentation",
            backend="lite",
            device="cpu",
            models=(
                ModelInfo("mediapipe_pose", MODEL_SOURCE),
                ModelInfo("mediapipe_selfie_segmentation", MODEL_SOURCE),
                ModelInfo("mediapipe_face_mesh", MODEL_SOURCE),
            ),
        )


def _face_ellipse(landmarks: PoseLandmarks) -> npt.NDArray[np.float64]:
    """A face-sized ellipse polygon around the pose's eyes, ears and nose (FaceMesh found nothing)."""
    points = landmarks.points.astype(np.float64)
    visible = [i for i in HEAD_LANDMARKS if landmarks.visibility[i] >= HEAD_MIN_VISIBILITY]
    head = points[visible or list(HEAD_LANDMARKS)]
    center = head.mean(axis=0)
    ears = float(np.linalg.norm(points[LEFT_EAR] - points[RIGHT_EAR]))
    eyes = float(np.linalg.norm(points[LEFT_EYE] - points[RIGHT_EYE]))
    width = max(ears, 2.0 * eyes, 4.0)
    eye_line = points[LEFT_EYE] - points[RIGHT_EYE]
    angle = float(np.degrees(np.arctan2(eye_line[1], eye_line[0]))) if eyes > 1e-3 else 0.0
    # The eyes sit a little above the face's centre: shift the ellipse down towards the chin.
    center = center + np.array([0.0, 0.15 * width])
    polygon = cv2.ellipse2Poly(
        _pixel(center), (max(2, round(0.55 * width)), max(2, round(0.75 * width))), round(angle), 0, 360, 10
    )
    return polygon.astype(np.float64)
