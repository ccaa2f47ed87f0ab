"""Lite segmentation: MediaPipe (person, face, body landmarks) + body geometry + seeded GrabCut.

Weight-free and CPU-only (mediapipe's bundled models and OpenCV; no torch). For one photo:

1. **Person.** MediaPipe selfie segmentation gives the foreground; only the blob(s) holding the body are kept.
2. **Body.** MediaPipe Pose landmarks (the shared, cached detector the lite pose stage uses) give a body
   frame (``up`` from hips to shoulders, ``side`` from the person's right to left, ``unit`` ~ the shoulder
   width) in which every region is drawn: the torso polygon under a neckline, arm and leg capsules, hands,
   feet, and the "head column" above the shoulders' top edge (face, hair, neck).
3. **Face.** MediaPipe FaceMesh on a crop around the pose's head landmarks (so small faces in full-body
   shots are found); the convex hull of its 468 points is the face. Its cheek colour (Cr/Cb) is the
   person's skin model.
4. **Garment.** The region the new garment will occupy (per :class:`GarmentCategory`) seeds GrabCut, which
   finds the garment currently worn there (sleeves, a long hem, a collar) from its colours. GrabCut runs on
   a crop of the body region at ~20k pixels (it costs ~1 µs per pixel per iteration); its result is
   snapped to the photo's edges by a guided filter. Skin, hands, feet and the head column are never
   garment, except a collar below the chin.
5. **Label map.** The 18 Segformer-B2-Clothes labels are filled from these regions (see
   :func:`build_label_map`), so the full backend's consumers can use either.

Masks are uint8 0/255 at the photo's size; the output is deterministic (GrabCut's RNG is seeded).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.pose.mediapipe_landmarks import (
    MediaPipePoseLandmarker,
    PoseLandmarks,
    downscale,
    shared_pose_landmarker,
    validate_person_image,
)
from tryon.types import (
    NO_PERSON_FOUND,
    BackendInfo,
    ClothesLabel,
    GarmentCategory,
    ModelInfo,
    RGBImage,
    SegmentationInput,
    SegmentationOutput,
    StageInputError,
)

MODEL_SOURCE = "bundled:mediapipe==0.10.21"
BoolMask = npt.NDArray[np.bool_]
Points = npt.NDArray[np.float64]

#: Selfie segmentation's network sees 256x256; a 512 px copy is plenty to feed it.
PERSON_LONG_SIDE = 512
#: Person probability above which a pixel is foreground.
PERSON_THRESHOLD = 0.5
#: GrabCut's pixel budget (its crop is scaled to about this many pixels) and iterations.
GRABCUT_PIXELS = 20_000
GRABCUT_ITERATIONS = 2
GRABCUT_SEED = 1234
BACKDROP_FILL = (255, 0, 255)
#: GrabCut's blocky result is snapped to the photo's edges by a guided filter at this long side (of the
#: photo); radius in pixels there, eps on [0, 1] colours (edges whose contrast is well above
#: sqrt(eps) ~ 0.1 stop the mask).
REFINE_LONG_SIDE = 384
GUIDED_RADIUS = 4
GUIDED_EPS = 1e-2
#: FaceMesh input: a square crop around the head, this many pixels a side and this many face sizes wide.
FACE_CROP_SIZE = 192
FACE_CROP_SCALE = 2.4
#: A face landmark less visible than this means the face is turned away.
FACE_MIN_VISIBILITY = 0.5
#: Skin: Cr/Cb within this many robust standard deviations of the face's (clamped to the range below).
SKIN_SIGMAS = 3.0
SKIN_SIGMA_RANGE = (4.0, 8.0)
#: The classic YCrCb skin box, used when no face is visible to learn the person's skin from.
GENERIC_SKIN = ((133.0, 173.0), (77.0, 127.0))
#: The garment region grows by this fraction of the long side (into the person only), so the worn
#: garment's antialiased edge is replaced too; the full backend grows its mask by 1 %.
CLOTHING_GROWTH = 0.006
WARMUP_SIZE = (256, 192)

# MediaPipe Pose landmark indices ("left"/"right" are the person's).
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT = 0, 2, 5, 7, 8, 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_PINKY, RIGHT_PINKY, LEFT_INDEX, RIGHT_INDEX, LEFT_THUMB, RIGHT_THUMB = 17, 18, 19, 20, 21, 22
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT, RIGHT_FOOT = 29, 30, 31, 32
HEAD_LANDMARKS = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT)
#: FaceMesh cheek and nose-bridge points: skin, away from eyes, brows, lips and hair.
FACE_SKIN_POINTS = (50, 280, 101, 330, 205, 425, 6, 197)

GARMENT_LABEL = {
    GarmentCategory.UPPER_BODY: ClothesLabel.UPPER_CLOTHES,
    GarmentCategory.LOWER_BODY: ClothesLabel.PANTS,
    GarmentCategory.DRESS: ClothesLabel.DRESS,
}


# ------------------------------------------------------------------------------------------ drawing


@dataclass(frozen=True)
class Frame:
    """A raster to draw in: a crop of the photo from ``(x0, y0)``, resized by ``scale``.

    Coordinates map pixel centres to pixel centres, as ``cv2.resize`` does, so a shape drawn here lines
    up with the resized photo: ``x -> (x - x0 + 0.5) * scale - 0.5``.
    """

    height: int
    width: int
    x0: float = 0.0
    y0: float = 0.0
    scale: float = 1.0

    def to_frame(self, points: npt.ArrayLike) -> Points:
        return (np.asarray(points, dtype=np.float64) - (self.x0, self.y0) + 0.5) * self.scale - 0.5

    def blank(self) -> npt.NDArray[np.uint8]:
        return np.zeros((self.height, self.width), np.uint8)


_SHIFT = 4  # sub-pixel bits for OpenCV's polygon rasteriser


def _fixed(points: Points) -> npt.NDArray[np.int32]:
    # Clip far-away construction points so the fixed-point coordinates cannot overflow int32.
    return np.round(np.clip(points, -1e5, 1e5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def fill_polygon(canvas: npt.NDArray[np.uint8], frame: Frame, polygon: npt.ArrayLike) -> None:
    """Fill ``polygon`` (photo pixels, any shape) with 1 on ``canvas`` (a raster of ``frame``)."""
    cv2.fillPoly(canvas, [_fixed(frame.to_frame(polygon))], 1, lineType=cv2.LINE_8, shift=_SHIFT)


def capsule_outline(
    start: npt.ArrayLike, end: npt.ArrayLike, start_radius: float, end_radius: float
) -> Points:
    """The convex outline of a tapered capsule: the hull of a disc at each end."""
    angles = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    discs = np.concatenate(
        [
            np.asarray(start, np.float64) + circle * start_radius,
            np.asarray(end, np.float64) + circle * end_radius,
        ]
    )
    return cv2.convexHull(discs.astype(np.float32)).reshape(-1, 2).astype(np.float64)


# ------------------------------------------------------------------------------------------ body geometry


@dataclass(frozen=True)
class Capsule:
    start: tuple[float, float]
    end: tuple[float, float]
    start_radius: float
    end_radius: float

    def outline(self) -> Points:
        return capsule_outline(self.start, self.end, self.start_radius, self.end_radius)


@dataclass(frozen=True)
class BodyShapes:
    """Every region the segmentation draws, as polygons / capsules in the photo's pixels."""

    unit: float  # body size in pixels (~ shoulder width)
    torso: Points  # under the neckline and over the shoulders, down to the hip joints: where a top goes
    head: Points  # the column above the torso's top edge between the shoulders: face, hair, neck
    neck: list[Capsule]  # chin to the base of the neck
    chest: Points  # the upper torso: covered by any top (crop tops included)
    above_waist: Points  # half-plane above the natural waist
    above_hips: Points  # half-plane above the hip joints
    pelvis: Points  # waist to crotch: where trousers or a skirt start
    skirt: Points  # hips flaring out to below the knees: a dress's skirt
    below_mid_thigh: Points  # half-plane a top's hem never reaches
    below_high_waist: Points  # half-plane trousers never start above
    arms: dict[str, list[Capsule]]  # "left" / "right" (the person's): upper arm, forearm
    sleeves: list[Capsule]  # the upper arms' top halves, where short sleeves are
    hands: dict[str, list[Capsule]]
    legs: dict[str, list[Capsule]]  # thigh, shin (to the ankle)
    feet: dict[str, list[Capsule]]
    thigh_cores: list[Capsule]  # upper thighs: covered by trousers or a skirt


def _unit_vector(vector: Points, fallback: tuple[float, float]) -> Points:
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 1e-6 else np.asarray(fallback, np.float64)


def body_shapes(points: npt.ArrayLike) -> BodyShapes:
    """The body regions of a person from MediaPipe's 33 pose landmarks (photo pixels, (33, 2)).

    Landmarks out of the photo are used as MediaPipe extrapolates them (hips below a portrait's bottom
    edge still give the torso its direction). Offsets are in the body frame, so a leaning person works;
    the fractions of ``unit`` were fitted by eye on studio photos (shoulder / hip landmarks are joints,
    inside the body's outline).
    """
    p = np.asarray(points, dtype=np.float64).reshape(33, 2)
    shoulder_mid = (p[LEFT_SHOULDER] + p[RIGHT_SHOULDER]) / 2
    hip_mid = (p[LEFT_HIP] + p[RIGHT_HIP]) / 2
    torso_length = float(np.hypot(*(shoulder_mid - hip_mid)))
    up = _unit_vector(shoulder_mid - hip_mid, (0.0, -1.0))
    across = np.array([-up[1], up[0]])  # image-right for an upright person
    # "side" points from the person's right to their left: image-right when they face the camera.
    side = across if float(np.dot(p[LEFT_SHOULDER] - p[RIGHT_SHOULDER], across)) >= 0 else -across
    shoulder_width = float(np.hypot(*(p[LEFT_SHOULDER] - p[RIGHT_SHOULDER])))
    # Seen from the side the shoulders overlap; the torso length (~1.4 shoulder widths) takes over.
    unit = max(shoulder_width, 0.7 * torso_length, 1.0)

    def at(base: Points, toward_left: float, upward: float) -> Points:
        return base + side * (toward_left * unit) + up * (upward * unit)

    far = 50.0  # construction points far outside any photo

    def half_plane(point: Points, above: bool) -> Points:
        sign = 1.0 if above else -1.0
        return np.array(
            [
                at(point, -far, 0.0),
                at(point, far, 0.0),
                at(point, far, sign * far),
                at(point, -far, sign * far),
            ]
        )

    rs, ls, rh, lh = p[RIGHT_SHOULDER], p[LEFT_SHOULDER], p[RIGHT_HIP], p[LEFT_HIP]
    # A garment's top edge: outer shoulder, shoulder top, the base of the neck, a shallow neckline.
    top_edge = [
        at(rs, -0.16, -0.02), at(rs, -0.08, 0.1), at(rs, 0.05, 0.15),
        at(shoulder_mid, -0.2, 0.17), at(shoulder_mid, -0.12, 0.11), at(shoulder_mid, 0.0, 0.08),
        at(shoulder_mid, 0.12, 0.11), at(shoulder_mid, 0.2, 0.17),
        at(ls, -0.05, 0.15), at(ls, 0.08, 0.1), at(ls, 0.16, -0.02),
    ]  # fmt: skip
    torso = np.array([*top_edge, at(lh, 0.24, 0.0), at(rh, -0.24, 0.0)])
    head = np.array([at(rs, -0.16, far), *top_edge, at(ls, 0.16, far)])
    eyes_mid = (p[LEFT_EYE] + p[RIGHT_EYE]) / 2
    mouth_mid = (p[MOUTH_LEFT] + p[MOUTH_RIGHT]) / 2
    chin = mouth_mid + 0.9 * (mouth_mid - eyes_mid)
    neck = [Capsule(tuple(chin), tuple(at(shoulder_mid, 0.0, 0.08)), 0.2 * unit, 0.24 * unit)]
    waist = shoulder_mid + 0.6 * (hip_mid - shoulder_mid)
    chest = np.array(
        [at(shoulder_mid, -0.26, -0.22), at(shoulder_mid, 0.26, -0.22), at(waist, 0.22, 0.12),
         at(waist, -0.22, 0.12)]
    )  # fmt: skip
    pelvis = np.array(
        [at(rh, -0.22, 0.28), at(lh, 0.22, 0.28), at(lh, 0.26, 0.0), at(lh, 0.2, -0.3),
         at(hip_mid, 0.0, -0.32), at(rh, -0.2, -0.3), at(rh, -0.26, 0.0)]
    )  # fmt: skip
    rk, lk, ra, la = p[RIGHT_KNEE], p[LEFT_KNEE], p[RIGHT_ANKLE], p[LEFT_ANKLE]
    knee_mid, ankle_mid = (rk + lk) / 2, (ra + la) / 2
    hem = knee_mid + 0.35 * (ankle_mid - knee_mid)
    hem_half_width = 0.5 * unit + 0.5 * abs(float(np.dot(lk - rk, side)))
    skirt = np.array(
        [at(rh, -0.26, 0.0), at(lh, 0.26, 0.0), hem + side * hem_half_width, hem - side * hem_half_width]
    )

    def arm(shoulder: int, elbow: int, wrist: int) -> list[Capsule]:
        # It starts a little down the upper arm: the shoulder cap belongs to the torso (and to sleeves).
        start = p[shoulder] + 0.2 * (p[elbow] - p[shoulder])
        return [
            Capsule(tuple(start), tuple(p[elbow]), 0.16 * unit, 0.13 * unit),
            Capsule(tuple(p[elbow]), tuple(p[wrist]), 0.13 * unit, 0.1 * unit),
        ]

    def sleeve(shoulder: int, elbow: int) -> Capsule:
        return Capsule(
            tuple(p[shoulder]), tuple(p[shoulder] + 0.5 * (p[elbow] - p[shoulder])), 0.15 * unit, 0.14 * unit
        )

    def hand(wrist: int, index: int, pinky: int, thumb: int) -> list[Capsule]:
        # From a little past the wrist joint, so a sleeve's cuff is not cut off.
        knuckles = (p[index] + p[pinky]) / 2
        start = p[wrist] + 0.35 * (knuckles - p[wrist])
        fingertips = p[wrist] + 1.8 * (knuckles - p[wrist])
        return [
            Capsule(tuple(start), tuple(fingertips), 0.1 * unit, 0.1 * unit),
            Capsule(tuple(start), tuple(p[wrist] + 1.4 * (p[thumb] - p[wrist])), 0.07 * unit, 0.06 * unit),
        ]

    def leg(hip: int, knee: int, ankle: int) -> list[Capsule]:
        return [
            Capsule(tuple(p[hip]), tuple(p[knee]), 0.27 * unit, 0.17 * unit),
            Capsule(tuple(p[knee]), tuple(p[ankle]), 0.17 * unit, 0.11 * unit),
        ]

    def foot(ankle: int, heel: int, toe: int) -> list[Capsule]:
        # From just under the ankle bone: trousers cover the ankle, shoes what is below it.
        below_ankle = p[ankle] + 0.35 * (p[heel] - p[ankle])
        return [
            Capsule(tuple(below_ankle), tuple(p[heel]), 0.09 * unit, 0.09 * unit),
            Capsule(tuple(p[heel]), tuple(p[toe]), 0.09 * unit, 0.07 * unit),
        ]

    def thigh_core(hip: int, knee: int) -> Capsule:
        return Capsule(tuple(p[hip]), tuple(p[hip] + 0.4 * (p[knee] - p[hip])), 0.12 * unit, 0.1 * unit)

    return BodyShapes(
        unit=unit,
        torso=torso,
        head=head,
        neck=neck,
        chest=chest,
        above_waist=half_plane(waist, above=True),
        above_hips=half_plane(hip_mid, above=True),
        pelvis=pelvis,
        skirt=skirt,
        below_mid_thigh=half_plane(hip_mid + 0.55 * (knee_mid - hip_mid), above=False),
        below_high_waist=half_plane(at(hip_mid, 0.0, 0.6), above=False),
        arms={
            "right": arm(RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST),
            "left": arm(LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST),
        },
        sleeves=[sleeve(RIGHT_SHOULDER, RIGHT_ELBOW), sleeve(LEFT_SHOULDER, LEFT_ELBOW)],
        hands={
            "right": hand(RIGHT_WRIST, RIGHT_INDEX, RIGHT_PINKY, RIGHT_THUMB),
            "left": hand(LEFT_WRIST, LEFT_INDEX, LEFT_PINKY, LEFT_THUMB),
        },
        legs={"right": leg(RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE), "left": leg(LEFT_HIP, LEFT_KNEE, LEFT_ANKLE)},
        feet={
            "right": foot(RIGHT_ANKLE, RIGHT_HEEL, RIGHT_FOOT),
            "left": foot(LEFT_ANKLE, LEFT_HEEL, LEFT_FOOT),
        },
        thigh_cores=[thigh_core(RIGHT_HIP, RIGHT_KNEE), thigh_core(LEFT_HIP, LEFT_KNEE)],
    )


def draw_capsules(frame: Frame, capsules: list[Capsule]) -> BoolMask:
    canvas = frame.blank()
    for capsule in capsules:
        fill_polygon(canvas, frame, capsule.outline())
    return canvas.view(np.bool_)  # the canvas holds only 0 and 1


def draw_polygons(frame: Frame, *polygons: Points) -> BoolMask:
    canvas = frame.blank()
    for polygon in polygons:
        fill_polygon(canvas, frame, polygon)
    return canvas.view(np.bool_)  # the canvas holds only 0 and 1


@dataclass(frozen=True)
class RegionMasks:
    """The regions a garment category involves, rasterised in one frame (see :func:`category_regions`)."""

    target: BoolMask  # where the new garment goes, whatever is there now
    band: BoolMask  # where it goes only over the worn garment or skin (not over the other garment)
    core: BoolMask  # surely covered by the worn garment (unless skin shows there)
    allowed: BoolMask  # where the worn garment may extend
    excluded: BoolMask  # never garment: head column, hands, feet (for bottoms and dresses)
    arms: BoolMask  # arms without hands: garment only where a sleeve covers them
    sleeves: BoolMask  # upper arms near the shoulders: probably a top's sleeves, unless bare
    neck: BoolMask  # below the chin: garment only where a collar covers it


def category_regions(shapes: BodyShapes, category: GarmentCategory, frame: Frame) -> RegionMasks:
    """Rasterise the regions a garment of ``category`` involves in ``frame``.

    A top goes from the shoulders to the waist, and on to the hips over the worn top or bare skin (a
    crop top's midriff) but not over the trousers' waistband; trousers and skirts go from the hips to
    the ankles, and up to the waist over the worn bottom or skin; a dress from the shoulders to below
    the knees. Arms, hands, the head column (face, hair, neck) and feet are carved out.
    """
    arms = draw_capsules(frame, shapes.arms["right"] + shapes.arms["left"])
    hands = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    # The head column is never garment, except below the chin where a collar may be (GrabCut decides;
    # the face and neck skin are seeded "surely not").
    neck = draw_capsules(frame, shapes.neck)
    head = draw_polygons(frame, shapes.head) & ~arms & ~hands & ~neck  # raised arms are arms, not head
    feet = draw_capsules(frame, shapes.feet["right"] + shapes.feet["left"])
    torso = draw_polygons(frame, shapes.torso)
    chest = draw_polygons(frame, shapes.chest)
    thigh_cores = draw_capsules(frame, shapes.thigh_cores)
    # Tops and dresses have sleeves (or bare shoulders: skin); trousers do not.
    sleeves = np.zeros_like(arms)
    if category is not GarmentCategory.LOWER_BODY:
        sleeves = draw_capsules(frame, shapes.sleeves)
    if category is GarmentCategory.UPPER_BODY:
        above_waist = draw_polygons(frame, shapes.above_waist)
        target, band, core = torso & above_waist, torso & ~above_waist, chest
        allowed = ~draw_polygons(frame, shapes.below_mid_thigh)
        excluded = head | hands
    elif category is GarmentCategory.LOWER_BODY:
        above_hips = draw_polygons(frame, shapes.above_hips)
        bottoms = draw_polygons(frame, shapes.pelvis) | draw_capsules(
            frame, shapes.legs["right"] + shapes.legs["left"]
        )
        target, band, core = bottoms & ~above_hips, bottoms & above_hips, thigh_cores
        allowed = draw_polygons(frame, shapes.below_high_waist)
        excluded = head | hands | feet
    else:
        target = torso | draw_polygons(frame, shapes.skirt, shapes.pelvis)
        band, core = np.zeros_like(target), chest | thigh_cores
        allowed = np.ones_like(target)
        excluded = head | hands | feet
    carved = arms | excluded
    return RegionMasks(
        target=target & ~carved,
        band=band & ~carved,
        core=core & ~carved,
        allowed=allowed & ~excluded,
        excluded=excluded,
        arms=arms & ~hands,
        sleeves=sleeves & ~excluded,
        neck=neck & ~excluded,
    )


# ------------------------------------------------------------------------------------------ colour models


@dataclass(frozen=True)
class SkinModel:
    """Skin as an axis-aligned ellipse in YCrCb's chroma plane (luminance varies with shading)."""

    cr: float
    cb: float
    cr_sigma: float
    cb_sigma: float

    def mask(self, rgb: RGBImage) -> BoolMask:
        ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
        distance = ((ycrcb[..., 1] - self.cr) / self.cr_sigma) ** 2 + (
            (ycrcb[..., 2] - self.cb) / self.cb_sigma
        ) ** 2
        # Very dark or blown-out pixels have unreliable chroma.
        return (distance < SKIN_SIGMAS**2) & (ycrcb[..., 0] > 30) & (ycrcb[..., 0] < 250)


GENERIC_SKIN_MODEL = SkinModel(
    cr=sum(GENERIC_SKIN[0]) / 2,
    cb=sum(GENERIC_SKIN[1]) / 2,
    cr_sigma=(GENERIC_SKIN[0][1] - GENERIC_SKIN[0][0]) / (2 * SKIN_SIGMAS),
    cb_sigma=(GENERIC_SKIN[1][1] - GENERIC_SKIN[1][0]) / (2 * SKIN_SIGMAS),
)


def fit_skin_model(samples: npt.NDArray[np.uint8]) -> SkinModel:
    """The skin model of ``(N, 3)`` RGB face-skin samples: chroma median and robust spread."""
    ycrcb = cv2.cvtColor(samples.reshape(-1, 1, 3), cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float64)
    low, high = SKIN_SIGMA_RANGE
    medians = np.median(ycrcb[:, 1:], axis=0)
    spreads = 1.4826 * np.median(np.abs(ycrcb[:, 1:] - medians), axis=0)  # MAD -> sigma
    return SkinModel(
        cr=float(medians[0]),
        cb=float(medians[1]),
        cr_sigma=float(np.clip(spreads[0], low, high)),
        cb_sigma=float(np.clip(spreads[1], low, high)),
    )


# ------------------------------------------------------------------------------------------ mediapipe models


@dataclass(frozen=True)
class FaceResult:
    outline: Points  # convex face outline (photo pixels)
    skin: SkinModel | None


class FaceFinder:
    """MediaPipe FaceMesh on a square crop around the pose's head landmarks (one graph, locked)."""

    def __init__(self) -> None:
        self._mesh: Any = None
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self._lock:
            if self._mesh is None:
                import mediapipe as mp

                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=False
                )
                self._mesh.process(np.zeros((FACE_CROP_SIZE, FACE_CROP_SIZE, 3), np.uint8))

    def find(self, rgb: RGBImage, body: PoseLandmarks, unit: float) -> FaceResult | None:
        """The face of the person whose pose is ``body``, or None when it is turned away or not found."""
        head = body.points[list(HEAD_LANDMARKS)].astype(np.float64)
        if float(np.max(body.visibility[[NOSE, LEFT_EYE, RIGHT_EYE]])) < FACE_MIN_VISIBILITY:
            return None
        ears = float(np.hypot(*(head[3] - head[4])))
        eyes = float(np.hypot(*(head[1] - head[2])))
        face_size = max(ears, 2.5 * eyes, 0.45 * unit)
        centre = head.mean(axis=0)
        side = FACE_CROP_SCALE * face_size
        scale = FACE_CROP_SIZE / side
        # Crop + resize as one affine warp (zero padding where the crop leaves the photo).
        to_crop = np.array(
            [
                [scale, 0.0, FACE_CROP_SIZE / 2 - centre[0] * scale],
                [0.0, scale, FACE_CROP_SIZE / 2 - centre[1] * scale],
            ]
        )
        crop = cv2.warpAffine(
            rgb,
            to_crop,
            (FACE_CROP_SIZE, FACE_CROP_SIZE),
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        if self._mesh is None:
            self.setup()
        with self._lock:
            result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return self._fallback(body, unit)
        marks = result.multi_face_landmarks[0].landmark
        crop_points = np.array([(mark.x, mark.y) for mark in marks], dtype=np.float64) * FACE_CROP_SIZE
        outline_crop = cv2.convexHull(crop_points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        # Skin samples: small discs around cheek / nose-bridge points, in the crop.
        samples = np.zeros((FACE_CROP_SIZE, FACE_CROP_SIZE), np.uint8)
        radius = max(2, round(0.04 * FACE_CROP_SIZE / FACE_CROP_SCALE))
        for index in FACE_SKIN_POINTS:
            x, y = crop_points[index]
            if 0 <= x < FACE_CROP_SIZE and 0 <= y < FACE_CROP_SIZE:
                cv2.circle(samples, (round(x), round(y)), radius, 1, -1)
        skin_pixels = crop[samples.astype(bool)]
        skin = fit_skin_model(skin_pixels) if len(skin_pixels) >= 20 else None
        outline = (outline_crop - (to_crop[0, 2], to_crop[1, 2])) / scale
        return FaceResult(outline=outline, skin=skin)

    @staticmethod
    def _fallback(body: PoseLandmarks, unit: float) -> FaceResult | None:
        """A face ellipse from the pose's eyes, ears and mouth, for when FaceMesh finds no face."""
        p = body.points.astype(np.float64)
        eyes_mid = (p[LEFT_EYE] + p[RIGHT_EYE]) / 2
        mouth_mid = (p[MOUTH_LEFT] + p[MOUTH_RIGHT]) / 2
        down = mouth_mid - eyes_mid
        length = float(np.hypot(*down))
        if length < 1.0:
            return None
        width = max(float(np.hypot(*(p[LEFT_EAR] - p[RIGHT_EAR]))), 2.2 * length, 0.3 * unit)
        centre = eyes_mid + 0.45 * down
        angle = float(np.degrees(np.arctan2(down[1], down[0]))) - 90.0
        outline = cv2.ellipse2Poly(
            (round(centre[0]), round(centre[1])),
            (round(width * 0.5), round(length * 1.6)),
            round(angle),
            0,
            360,
            10,
        ).astype(np.float64)
        return FaceResult(outline=outline, skin=None)


class PersonSegmenter:
    """MediaPipe selfie segmentation (general model, 256x256) behind a lock."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self._lock:
            if self._model is None:
                import mediapipe as mp

                self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
                self._model.process(np.zeros((*WARMUP_SIZE, 3), np.uint8))

    def probability(self, rgb: RGBImage) -> npt.NDArray[np.float32]:
        """Foreground probability of every pixel of ``rgb`` (float32, same size)."""
        if self._model is None:
            self.setup()
        with self._lock:
            mask = self._model.process(rgb).segmentation_mask
        return np.asarray(mask, dtype=np.float32).copy()


def guided_filter(
    guide: RGBImage, source: npt.NDArray[np.float32], radius: int, eps: float
) -> npt.NDArray[np.float32]:
    """He et al.'s guided filter with a colour guide: ``source`` smoothed, its edges moved to ``guide``'s.

    Written with box filters rather than taken from ``cv2.ximgproc``: that module is only in the
    opencv-contrib build, and an environment with the full extra may hold the headless build instead.
    """
    image = guide.astype(np.float32) / 255.0
    source = source.astype(np.float32)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return cv2.boxFilter(values, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i = box(image)
    mean_p = box(source)
    cov_ip = box(image * source[..., None]) - mean_i * mean_p[..., None]
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    mr, mg, mb = mean_i[..., 0], mean_i[..., 1], mean_i[..., 2]
    products = box(np.stack([r * r, r * g, r * b, g * g, g * b, b * b], axis=-1))
    # The guide's 3x3 covariance per pixel (+ eps on the diagonal), inverted by cofactors.
    s_rr = products[..., 0] - mr * mr + eps
    s_rg = products[..., 1] - mr * mg
    s_rb = products[..., 2] - mr * mb
    s_gg = products[..., 3] - mg * mg + eps
    s_gb = products[..., 4] - mg * mb
    s_bb = products[..., 5] - mb * mb + eps
    i_rr = s_gg * s_bb - s_gb * s_gb
    i_rg = s_gb * s_rb - s_rg * s_bb
    i_rb = s_rg * s_gb - s_gg * s_rb
    i_gg = s_rr * s_bb - s_rb * s_rb
    i_gb = s_rb * s_rg - s_rr * s_gb
    i_bb = s_rr * s_gg - s_rg * s_rg
    determinant = s_rr * i_rr + s_rg * i_rg + s_rb * i_rb
    c_r, c_g, c_b = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a_r = (i_rr * c_r + i_rg * c_g + i_rb * c_b) / determinant
    a_g = (i_rg * c_r + i_gg * c_g + i_gb * c_b) / determinant
    a_b = (i_rb * c_r + i_gb * c_g + i_bb * c_b) / determinant
    offset = mean_p - a_r * mr - a_g * mg - a_b * mb
    mean_a = box(np.stack([a_r, a_g, a_b], axis=-1))
    return (mean_a * image).sum(axis=-1) + box(offset)


# ------------------------------------------------------------------------------------------ the backend


def _grow(mask: BoolMask, radius: int) -> BoolMask:
    if radius <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _components_touching(mask: BoolMask, seeds: BoolMask) -> BoolMask:
    """The connected components of ``mask`` that contain a ``seeds`` pixel."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    keep = np.zeros(count, bool)
    keep[np.unique(labels[seeds & mask])] = True
    keep[0] = False
    return keep[labels]


def _fill_holes(mask: BoolMask, max_fraction: float) -> BoolMask:
    """``mask`` with its enclosed holes smaller than ``max_fraction`` of its area filled (prints, logos)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    height, width = mask.shape
    x, y, w, h, area = (stats[:, column] for column in range(5))
    touches_border = (x == 0) | (y == 0) | (x + w == width) | (y + h == height)
    is_hole = ~touches_border & (area <= max_fraction * float(mask.sum()))
    is_hole[0] = False  # label 0 is the mask itself
    return mask | is_hole[labels]


def _resize_mask(mask: npt.NDArray[Any], height: int, width: int) -> npt.NDArray[np.float32]:
    return cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class GarmentEstimate:
    garment: BoolMask  # the worn garment, photo frame
    grown_garment: BoolMask  # the same, grown by a few pixels (its antialiased edge)
    skin: BoolMask  # skin-coloured pixels, photo frame


class LiteSegmentation:
    """Person / face / clothing masks and an 18-class label map from MediaPipe and classic CV, on the CPU."""

    def __init__(self, landmarker: MediaPipePoseLandmarker | None = None) -> None:
        self._landmarker = landmarker or shared_pose_landmarker()
        self._person = PersonSegmenter()
        self._faces = FaceFinder()

    def setup(self) -> None:
        self._landmarker.setup()
        self._person.setup()
        self._faces.setup()

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

    def run(self, inputs: SegmentationInput, /) -> SegmentationOutput:
        person = inputs.person
        validate_person_image(person)
        category = GarmentCategory(inputs.category)
        height, width = person.shape[:2]
        full = Frame(height, width)

        body = self._landmarker.detect(person)
        if body is None:
            raise StageInputError(NO_PERSON_FOUND, field="person")
        shapes = body_shapes(body.points)
        person_mask = self._person_mask(person, shapes)

        face = self._faces.find(person, body, shapes.unit)
        face_mask = np.zeros_like(person_mask)
        if face is not None:
            face_mask = draw_polygons(full, face.outline) & person_mask
        skin_model = face.skin if face is not None and face.skin is not None else GENERIC_SKIN_MODEL

        growth = CLOTHING_GROWTH * max(height, width)
        face_outline = face.outline if face is not None else None
        estimate = estimate_garment(person, person_mask, shapes, category, skin_model, growth, face_outline)
        regions = category_regions(shapes, category, full)
        garment, skin = estimate.garment, estimate.skin
        clothing = regions.target | (regions.band & (garment | skin)) | estimate.grown_garment
        # Arms stay out, even where the worn garment's sleeves cover them: the lite inpainter can only fill
        # what the new garment leaves uncovered by smearing the surroundings, which on an arm looks far
        # worse than keeping the old sleeve. The face always stays out.
        clothing &= person_mask & ~regions.excluded & ~regions.arms & ~face_mask

        label_map = build_label_map(
            person_mask=person_mask,
            face_mask=face_mask,
            face_outline=face_outline,
            garment=garment,
            skin=skin,
            shapes=shapes,
            category=category,
            frame=full,
        )
        return SegmentationOutput(
            label_map=label_map,
            clothing_mask=clothing.astype(np.uint8) * 255,
            face_mask=face_mask.astype(np.uint8) * 255,
            person_mask=person_mask.astype(np.uint8) * 255,
        )

    def _person_mask(self, person: RGBImage, shapes: BodyShapes) -> BoolMask:
        """Selfie segmentation's foreground, only the blob(s) holding the body, at the photo's size."""
        height, width = person.shape[:2]
        small = downscale(person, PERSON_LONG_SIDE)
        probability = self._person.probability(small)
        small_frame = Frame(small.shape[0], small.shape[1], scale=small.shape[1] / width)
        foreground = probability > PERSON_THRESHOLD
        # Other people and clutter the model calls foreground do not touch the torso.
        body = draw_polygons(small_frame, shapes.chest, shapes.torso)
        foreground = _components_touching(foreground, body)
        if not foreground.any():
            raise StageInputError(NO_PERSON_FOUND, field="person")
        # Upsample the probability (not the binary mask) so the outline is smooth at full size.
        return _resize_mask(np.where(foreground, probability, 0.0), height, width) > PERSON_THRESHOLD


def estimate_garment(
    person: RGBImage,
    person_mask: BoolMask,
    shapes: BodyShapes,
    category: GarmentCategory,
    skin_model: SkinModel,
    growth: float = 0.0,
    face_outline: Points | None = None,
) -> GarmentEstimate:
    """The worn garment of ``category`` (and the skin) by seeded GrabCut on a small crop of the person.

    ``growth`` (photo pixels) is how far :attr:`GarmentEstimate.grown_garment` extends the garment.

    Seeds: the core (minus skin) is garment; the target region (minus skin) probably garment; the rest
    of the allowed region (the other garment, the arms) probably not; skin in the arms, the excluded
    regions and everything outside the person surely not. Seeding the lower part of a top's region as
    "probably not" is what teaches GrabCut the trousers' colours, so it does not flood them.
    """
    height, width = person.shape[:2]
    box_x, box_y, box_w, box_h = cv2.boundingRect(person_mask.view(np.uint8))
    pad = round(0.03 * max(height, width))
    x_lo, x_hi = max(0, box_x - pad), min(width, box_x + box_w + pad)
    y_lo, y_hi = max(0, box_y - pad), min(height, box_y + box_h + pad)
    scale = min(1.0, float(np.sqrt(GRABCUT_PIXELS / ((x_hi - x_lo) * (y_hi - y_lo)))))
    crop_w, crop_h = max(8, round((x_hi - x_lo) * scale)), max(8, round((y_hi - y_lo) * scale))
    frame = Frame(crop_h, crop_w, x0=x_lo, y0=y_lo, scale=crop_w / (x_hi - x_lo))
    image = cv2.resize(person[y_lo:y_hi, x_lo:x_hi], (crop_w, crop_h), interpolation=cv2.INTER_AREA)
    inside = _resize_mask(person_mask[y_lo:y_hi, x_lo:x_hi], crop_h, crop_w) > 0.5

    regions = category_regions(shapes, category, frame)
    # Speckles of "skin" in prints and textures are noise: a skin region is at least a few pixels wide.
    skin = cv2.morphologyEx(
        skin_model.mask(image).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
    )
    skin = skin.astype(bool)
    seeds = np.full((crop_h, crop_w), cv2.GC_BGD, np.uint8)
    seeds[inside & regions.allowed] = cv2.GC_PR_BGD
    seeds[inside & regions.allowed & (regions.target | regions.sleeves) & ~skin] = cv2.GC_PR_FGD
    core = inside & regions.core & ~skin
    seeds[core] = cv2.GC_FGD
    # Bare arms and neck are surely not the garment; skin-coloured sleeves are left to GrabCut's colours.
    seeds[(regions.arms | regions.neck) & skin] = cv2.GC_BGD
    excluded = regions.excluded.copy()
    if face_outline is not None:
        excluded |= draw_polygons(frame, face_outline)
    seeds[excluded] = cv2.GC_BGD

    # The backdrop is not what the garment must be told apart from (the person mask already did that):
    # painted one colour it takes a single component of the background model, and the others learn the
    # person's skin, hair and other clothes. Otherwise a white shirt's sleeves by a pale wall are lost.
    image[~inside] = BACKDROP_FILL
    if core.sum() >= 10 and (seeds == cv2.GC_BGD).sum() >= 10:
        cv2.setRNGSeed(GRABCUT_SEED)  # its GMM initialisation draws from OpenCV's global RNG
        background_model = np.zeros((1, 65), np.float64)
        foreground_model = np.zeros((1, 65), np.float64)
        cv2.grabCut(
            image, seeds, None, background_model, foreground_model, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK
        )
        garment = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
        garment = _components_touching(garment, core)
        garment = _fill_holes(garment, max_fraction=0.05) & inside & ~excluded
    else:  # nothing to learn the garment's colours from (e.g. a bare torso): no worn garment
        garment = np.zeros_like(inside)

    # GrabCut's pixels are ~7 photo pixels wide at 1024 px: its mask is upsampled to a finer copy of the
    # crop, snapped to the photo's edges there by a guided filter, then upsampled to the photo.
    refine_scale = min(1.0, REFINE_LONG_SIDE / max(height, width))
    refine_w, refine_h = (
        max(8, round((x_hi - x_lo) * refine_scale)),
        max(8, round((y_hi - y_lo) * refine_scale)),
    )
    guide = cv2.resize(person[y_lo:y_hi, x_lo:x_hi], (refine_w, refine_h), interpolation=cv2.INTER_AREA)
    soft = guided_filter(guide, _resize_mask(garment, refine_h, refine_w), GUIDED_RADIUS, GUIDED_EPS)
    # Grown at the finer scale, where the kernel is small (a full-size dilation costs more than GrabCut).
    grown = _grow(soft > 0.5, max(1, round(growth * refine_scale))) if growth > 0 else soft > 0.5

    def to_photo(mask: npt.NDArray[Any]) -> BoolMask:
        """Upsample a crop-frame mask (bool or soft) and paste it where the crop came from."""
        photo = np.zeros((height, width), bool)
        photo[y_lo:y_hi, x_lo:x_hi] = _resize_mask(mask, y_hi - y_lo, x_hi - x_lo) > 0.5
        return photo & person_mask

    return GarmentEstimate(garment=to_photo(soft), grown_garment=to_photo(grown), skin=to_photo(skin))


def build_label_map(
    *,
    person_mask: BoolMask,
    face_mask: BoolMask,
    face_outline: Points | None,
    garment: BoolMask,
    skin: BoolMask,
    shapes: BodyShapes,
    category: GarmentCategory,
    frame: Frame,
) -> npt.NDArray[np.uint8]:
    """The 18-class :class:`ClothesLabel` map, with the classes lite can tell apart.

    Every person pixel gets a label, so ``label != BACKGROUND`` is the person mask as with Segformer:
    the worn garment of ``category`` gets its label; other clothing is upper clothes above the hips and
    trousers below; skin in the arm / leg capsules is arm / leg (the person's left and right; hands
    count as arms), feet are shoes unless bare; in the head column the face (and the bare skin next to
    it: neck, ears) is face and the rest hair. Hats, sunglasses, belts, bags, scarves and skirts (as
    opposed to trousers) are not told apart.
    """
    labels = np.zeros(person_mask.shape, np.uint8)
    below_hips = ~draw_polygons(frame, shapes.above_hips)
    labels[person_mask] = ClothesLabel.UPPER_CLOTHES
    labels[person_mask & below_hips] = ClothesLabel.PANTS
    for side, leg_label, shoe_label in (
        ("left", ClothesLabel.LEFT_LEG, ClothesLabel.LEFT_SHOE),
        ("right", ClothesLabel.RIGHT_LEG, ClothesLabel.RIGHT_SHOE),
    ):
        legs = draw_capsules(frame, shapes.legs[side]) & below_hips
        labels[person_mask & legs & skin & ~garment] = leg_label
        feet = person_mask & draw_capsules(frame, shapes.feet[side]) & ~garment
        labels[feet] = shoe_label
        labels[feet & skin] = leg_label
    labels[garment] = GARMENT_LABEL[category]
    arms_and_hands = np.zeros_like(person_mask)
    for side, arm_label in (("left", ClothesLabel.LEFT_ARM), ("right", ClothesLabel.RIGHT_ARM)):
        arm = draw_capsules(frame, shapes.arms[side])
        hand = draw_capsules(frame, shapes.hands[side])
        # For tops and dresses GrabCut decided the sleeves; with trousers, a non-skin arm is a sleeve.
        bare = arm & ~garment if category is not GarmentCategory.LOWER_BODY else arm & skin & ~garment
        labels[person_mask & (bare | hand)] = arm_label
        arms_and_hands |= arm | hand
    head = person_mask & draw_polygons(frame, shapes.head) & ~arms_and_hands & ~garment
    labels[head] = ClothesLabel.HAIR
    near_face = draw_capsules(frame, shapes.neck)
    if face_outline is not None:  # the face enlarged by a fifth: ears, hairline
        centre = face_outline.mean(axis=0)
        near_face |= draw_polygons(frame, centre + 1.2 * (face_outline - centre))
    labels[head & skin & near_face] = ClothesLabel.FACE
    labels[face_mask] = ClothesLabel.FACE
    return labels
