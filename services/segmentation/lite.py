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
   garment, except a collar below the chin. What is replaced is that garment and the category's region,
   less the bare skin the garment leaves in it (a neckline's chest, bare shoulders, a midriff: kept as the
   photo's, :func:`bare_skin`); in a hand's capsule only the hand itself (its skin-coloured pixels) stays
   carved out and in front of any new garment (:func:`hands_in_front`, :func:`garment_beside_the_hands`),
   and a thin rim outside the person's outline, where the garment's own edge still shows, is replaced too
   (:data:`GARMENT_RIM`).
5. **Label map.** The 18 Segformer-B2-Clothes labels are filled from these regions (see
   :func:`build_label_map`), so the full backend's consumers can use either.

Masks are uint8 at the photo's size; the output is deterministic (GrabCut's RNG is seeded). The person
and face masks are 0/255; the clothing mask is > 127 where the garment may change the photo, and its
value says what is there (see :mod:`tryon.vision.mask_kinds`): the worn garment to replace (its sleeves
on the arms included), by which kind of surface the lite inpainter fills it where the new garment does
not reach, and around it the body the new garment may cover (longer, with sleeves) without replacing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.segmentation.body import (
    BodyShapes,
    BoolMask,
    Capsule,
    Frame,
    Points,
    RegionMasks,
    body_outline,
    body_shapes,
    category_reach,
    category_regions,
    draw_capsules,
    draw_polygons,
    lower_garment_underneath,
    skin_underneath,
)
from services.segmentation.garment import (
    GENERIC_SKIN_MODEL,
    GarmentEstimate,
    SkinModel,
    build_label_map,
    components_touching,
    estimate_garment,
    fit_skin_model,
    resize_mask,
)
from tryon.types import (
    NO_PERSON_FOUND,
    BackendInfo,
    GarmentCategory,
    ModelInfo,
    RGBImage,
    SegmentationInput,
    SegmentationOutput,
    StageInputError,
)
from tryon.vision import mask_kinds
from tryon.vision.images import downscale
from tryon.vision.mediapipe_landmarks import (
    HEAD_LANDMARKS,
    LEFT_EAR,
    LEFT_EYE,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE,
    RIGHT_EAR,
    RIGHT_EYE,
    MediaPipePoseLandmarker,
    PoseLandmarks,
    shared_pose_landmarker,
    validate_person_image,
)

MODEL_SOURCE = "bundled:mediapipe==0.10.21"
#: Foreground not connected to the person tried on, larger than this fraction of theirs, is another person.
OTHER_PERSON_FRACTION = 0.3
logger = logging.getLogger(__name__)
#: Selfie segmentation's network sees 256x256; a 512 px copy is plenty to feed it.
PERSON_LONG_SIDE = 512
#: Person probability above which a pixel is foreground.
PERSON_THRESHOLD = 0.5
#: FaceMesh input: a square crop around the head, this many pixels a side and this many face sizes wide.
FACE_CROP_SIZE = 192
FACE_CROP_SCALE = 2.4
#: A face landmark less visible than this means the face is turned away.
FACE_MIN_VISIBILITY = 0.5
#: The garment region grows by this fraction of the long side (into the person only), so the worn
#: garment's antialiased edge is replaced too; the full backend grows its mask by 1 %.
CLOTHING_GROWTH = 0.006
#: Worn garment farther than this many body units (~ shoulder widths) from the category's body regions
#: (torso, pelvis, leg and arm capsules) stands off the body: the backdrop is behind it.
OFF_BODY_GROWTH = 0.06
#: The person's outline (selfie segmentation at PERSON_LONG_SIDE, upsampled) runs a few pixels
#: inside the worn garment's own edge: a band this wide (fraction of the long side) of backdrop beside the
#: replaced garment is refilled from the backdrop too, or the old garment's edge stays as a dark rim.
GARMENT_RIM = 0.005
#: A worn garment covering more than this share of the torso just below the highest waistband continues
#: above it (a dress, a long top), see :func:`_continues_above_high_waist`.
CONTINUING_GARMENT_SHARE = 0.6
#: A hand keeps this margin (fraction of the long side) of its skin-coloured pixels in front of the new
#: garment; a hand capsule with less than this share of skin-coloured pixels is kept whole.
HAND_MARGIN = 0.004
HAND_MIN_SKIN = 0.15
#: Bare skin inside the category's region stays the photo's (see :func:`bare_skin`): pieces of the region
#: the worn garment leaves, at least this share of it large, at least this share skin-coloured, and only
#: when a worn garment covers at least this share of the region (else the garment itself may be the
#: "skin": a beige top GrabCut could not tell from the face's colour).
BARE_SKIN_MIN_AREA = 0.005
BARE_SKIN_MIN_SKIN = 0.6
BARE_SKIN_MIN_GARMENT = 0.25
BARE_SKIN_STRIDE = 4
#: A kept piece's pixels darker than this share of its median luminance are no skin (a strap's edge).
STRAP_DARKNESS = 0.55
#: Straps (:func:`strap_lines`): pixels this many grey levels darker than the closing of the luminance by
#: a square this share of the photo's long side (3 px at least) are a thin dark line; such lines joined
#: to the worn garment are sought this far from it (share of the long side). A strap's stretch over a
#: shoulder, outside the category's region, stayed on the new garment's shoulder; a stretch antialiased
#: half into the skin passed the colour tests and cut the rest off from the garment.
STRAP_CONTRAST = 30.0
STRAP_WIDTH = 0.005
STRAP_REACH = 0.3
WARMUP_SIZE = (256, 192)
#: FaceMesh cheek and nose-bridge points: skin, away from eyes, brows, lips and hair.
FACE_SKIN_POINTS = (50, 280, 101, 330, 205, 425, 6, 197)


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
        p = np.asarray(body.points, np.float64)
        eyes_mid = (p[LEFT_EYE] + p[RIGHT_EYE]) / 2
        mouth_mid = (p[MOUTH_LEFT] + p[MOUTH_RIGHT]) / 2
        down = mouth_mid - eyes_mid
        length = float(np.hypot(*down))
        if length < 1.0:
            return None
        width = max(float(np.hypot(*(p[LEFT_EAR] - p[RIGHT_EAR]))), 2.2 * length, 0.3 * unit)
        centre = eyes_mid + 0.45 * down
        angle = float(np.degrees(np.arctan2(down[1], down[0]))) - 90.0
        outline = np.asarray(
            cv2.ellipse2Poly(
                (round(centre[0]), round(centre[1])),
                (round(width * 0.5), round(length * 1.6)),
                round(angle),
                0,
                360,
                10,
            ),
            np.float64,
        )
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


def _continues_above_high_waist(garment: BoolMask, person_mask: BoolMask, shapes: BodyShapes) -> bool:
    """Whether the worn garment a lower-body try-on replaces runs on up the torso past the highest
    waistband (most of the torso's width garment on the strip just below that line): a dress or a long
    top over the hips, not trousers or a skirt, which end at their waistband."""
    height, width = garment.shape
    quarter = Frame(max(8, height // 4), max(8, width // 4), scale=max(8, width // 4) / width)
    strip = draw_polygons(quarter, shapes.below_high_waist) & ~draw_polygons(
        quarter, shapes.below_high_waist_strip
    )
    strip &= draw_polygons(quarter, shapes.torso, shapes.pelvis)
    small_person = resize_mask(person_mask, quarter.height, quarter.width) > 0.5
    small_garment = resize_mask(garment, quarter.height, quarter.width) > 0.5
    body = strip & small_person
    if body.sum() < 8:
        return False
    return float((small_garment & body).sum()) > CONTINUING_GARMENT_SHARE * float(body.sum())


def hands_in_front(
    person: RGBImage, shapes: BodyShapes, frame: Frame, skin_model: SkinModel, allowed: BoolMask
) -> BoolMask:
    """The hands themselves, which stay in front of any new garment: in each hand's capsule (drawn from the
    hand landmarks, wider than the hand) the pixels of the person's skin colour (``skin_model``, at the
    photo's resolution) with a margin of :data:`HAND_MARGIN` of the long side, so the hand's antialiased
    outline stays the photo's; the whole capsule where it holds too little of the skin colour (a glove, a
    hand in deep shadow). Only in ``allowed`` (the person, not the face) and never the head."""
    height, width = frame.height, frame.width
    hands = np.zeros((height, width), bool)
    margin = max(1, round(HAND_MARGIN * max(height, width)))
    head = draw_polygons(frame, shapes.head)
    for capsules in (shapes.hands["right"], shapes.hands["left"]):
        capsule = draw_capsules(frame, capsules) & allowed & ~head
        if not capsule.any():
            continue
        top, left, box_height, box_width = _box_of(capsule, margin=margin + 1)
        box = slice(top, top + box_height), slice(left, left + box_width)
        skin = cv2.morphologyEx(
            skin_model.mask(person[box]).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
        )
        if skin[capsule[box]].mean() < HAND_MIN_SKIN:
            hands[box] |= capsule[box]  # no hand of the person's skin colour found: the whole capsule
            continue
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        hands[box] |= capsule[box] & cv2.dilate(skin, disc).astype(bool)
    return hands


def beside_the_hands(shapes: BodyShapes, frame: Frame, hands: BoolMask, allowed: BoolMask) -> BoolMask:
    """What the hands' capsules hold besides the hands themselves (``hands``, :func:`hands_in_front`): a
    pocket a hand is in, the trousers or skirt beside a hand resting on the thigh, a sleeve's cuff."""
    capsules = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    return capsules & allowed & ~draw_polygons(frame, shapes.head) & ~hands


def in_front_of_garments(
    regions: RegionMasks, shapes: BodyShapes, frame: Frame, hands: BoolMask, allowed: BoolMask
) -> BoolMask:
    """What no new garment covers: the category's excluded regions (the head column, hands, feet), but of
    the hands' capsules only the hands themselves (``hands``, :func:`hands_in_front`)."""
    return (regions.excluded & ~beside_the_hands(shapes, frame, hands, allowed)) | hands


def garment_beside_the_hands(
    person: RGBImage,
    shapes: BodyShapes,
    frame: Frame,
    skin_model: SkinModel,
    replace: BoolMask,
    allowed: BoolMask,
    hands: BoolMask | None = None,
) -> BoolMask:
    """The worn garment inside the hands' capsules, where it continues the replaced region: carving all of
    each capsule out of the garment left a patch of the old garment around every hand by the body.

    The capsules' pixels beside the hands themselves (:func:`beside_the_hands`; ``hands`` if already
    found, else :func:`hands_in_front`) that touch ``replace``, in ``allowed`` (the person, not the face).
    """
    if hands is None:
        hands = hands_in_front(person, shapes, frame, skin_model, allowed)
    beside = beside_the_hands(shapes, frame, hands, allowed)
    if not beside.any():
        return beside
    top, left, box_height, box_width = _box_of(beside, margin=2)
    box = slice(top, top + box_height), slice(left, left + box_width)
    touching = cv2.dilate(replace[box].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    found = np.zeros_like(beside)
    found[box] = components_touching(beside[box], touching)
    return found


def bare_skin(
    person: RGBImage, replace: BoolMask, estimate: GarmentEstimate, skin_model: SkinModel
) -> BoolMask:
    """The bare skin the worn garment leaves inside ``replace`` (the category's region and the garment): a
    neckline's chest, bare shoulders beside straps, a midriff, legs below shorts.

    Painted over, that skin lost its own shading and texture (collarbones, a neckline's light) for a flat
    tone, and its outline stood as a seam on the body. Pieces of ``replace`` off the worn garment (grown
    by its antialiased edge) are kept whole when they are mostly skin: a highlight on the chest that fails
    the colour test stays with the chest around it. Skin is the person's skin model (``estimate.skin``)
    and the generic skin box both: a pale face's model reaches the neutral greys of jeans and white
    letters. Nothing is kept when GrabCut found little garment in the region: then what looks like skin
    may be the garment (see :data:`BARE_SKIN_MIN_GARMENT`).

    GrabCut's pixels are too coarse for thin straps: the pixels of the kept pieces that fail the colour
    test (``skin_model`` and the generic box, at full resolution, and not much darker than the piece:
    :data:`STRAP_DARKNESS`) and touch the worn garment are the garment's straps and edges, and are
    replaced after all (with a pixel of their antialiased edge).
    """
    region = int(replace.sum())
    if region == 0 or (estimate.garment & replace).sum() < BARE_SKIN_MIN_GARMENT * region:
        return np.zeros_like(replace)
    off_garment = (replace & ~estimate.grown_garment).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(off_garment, connectivity=8)
    if count <= 1:
        return np.zeros_like(replace)
    # Skin shares on every BARE_SKIN_STRIDE-th pixel: a share needs no full-resolution colour test.
    step = (slice(None, None, BARE_SKIN_STRIDE),) * 2
    sampled = labels[step]
    sampled_skin = estimate.skin[step] & GENERIC_SKIN_MODEL.mask(np.ascontiguousarray(person[step]))
    areas = np.bincount(sampled.ravel(), minlength=count)
    skin_pixels = np.bincount(sampled[sampled_skin], minlength=count)
    kept = (stats[:, cv2.CC_STAT_AREA] >= BARE_SKIN_MIN_AREA * region) & (
        skin_pixels >= BARE_SKIN_MIN_SKIN * np.maximum(areas, 1)
    )
    kept[0] = False
    bare = kept[labels]
    if not bare.any():
        return bare
    top, left, box_height, box_width = _box_of(bare, margin=2)
    box = slice(top, top + box_height), slice(left, left + box_width)
    colour = np.ascontiguousarray(person[box])
    skin_in_box = skin_model.mask(colour) & GENERIC_SKIN_MODEL.mask(colour)
    # A thin dark strap's pixels are its black mixed with the skin either side: skin's chroma, too dark.
    luma = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)
    skin_in_box &= luma >= STRAP_DARKNESS * float(np.median(luma[bare[box]]))
    not_skin = bare[box] & ~skin_in_box
    garment_edge = cv2.dilate(estimate.grown_garment[box].astype(np.uint8), np.ones((3, 3), np.uint8))
    straps = components_touching(not_skin, garment_edge.astype(bool))
    bare[box] &= ~cv2.dilate(straps.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return bare


def strap_lines(person: RGBImage, garment: BoolMask, allowed: BoolMask, skin_model: SkinModel) -> BoolMask:
    """The thin dark lines over skin in ``allowed`` joined to the worn ``garment``: its straps' stretches
    where the replaced region does not reach (over a shoulder, along an arm's edge), a few pixels wide,
    the skin's colour half mixed into them. Found as what a closing of the luminance by a square
    :data:`STRAP_WIDTH` of the long side fills by :data:`STRAP_CONTRAST` grey levels (a dark valley
    narrower than the square) with skin (``skin_model``) within that square, up to :data:`STRAP_REACH`
    from the garment; grown by a pixel for their antialiased edge. Over skin only: the seams, pockets
    and prints of the other garments are thin dark lines too."""
    if not garment.any():
        return np.zeros_like(garment)
    long_side = max(person.shape[:2])
    top, left, box_height, box_width = _box_of(garment, margin=round(STRAP_REACH * long_side))
    box = slice(top, top + box_height), slice(left, left + box_width)
    luma = cv2.cvtColor(np.ascontiguousarray(person[box]), cv2.COLOR_RGB2GRAY)
    size = max(3, round(STRAP_WIDTH * long_side)) | 1
    square = np.ones((size, size), np.uint8)
    thin_dark = cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, square) > STRAP_CONTRAST
    thin_dark &= cv2.dilate(skin_model.mask(np.ascontiguousarray(person[box])).astype(np.uint8), square) > 0
    # Where a strap meets the garment, the closing fills less (the garment's dark is beside it): the line
    # is taken as joined within the square's size of the garment.
    edge = cv2.dilate(garment[box].astype(np.uint8), np.ones((size + 2, size + 2), np.uint8)).astype(bool)
    # Joined through any thin dark pixels: a strap's stretch inside the replaced region (too fine for
    # GrabCut's garment) links its stretch over the shoulder to the garment.
    lines = components_touching(thin_dark, edge) & allowed[box]
    straps = np.zeros_like(garment)
    straps[box] = cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & allowed[box]
    return straps


def _box_of(mask: BoolMask, *, margin: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of ``mask``'s bounding box grown by ``margin``, inside the frame."""
    x, y, box_width, box_height = cv2.boundingRect(mask.view(np.uint8))
    top, left = max(0, y - margin), max(0, x - margin)
    bottom = min(mask.shape[0], y + box_height + margin)
    right = min(mask.shape[1], x + box_width + margin)
    return top, left, bottom - top, right - left


def _visible_skin(
    body: PoseLandmarks, shapes: BodyShapes, frame: Frame, face_mask: BoolMask, skin: BoolMask
) -> BoolMask:
    """Skin-coloured pixels of the face (without eyes, brows and mouth), the neck and the hands.

    ``skin`` is the skin-model mask (the face's cheek colour, or the generic model). Eyes with their brows
    and the mouth are carved out by the pose's eye and mouth points, generously: lips and brows can pass a
    chroma test, and shadowed eye sockets are skin of another tone.
    """
    points = np.asarray(body.points, np.float64)
    eyes_mid = (points[LEFT_EYE] + points[RIGHT_EYE]) / 2
    mouth_mid = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) / 2
    eye_distance = max(float(np.hypot(*(points[LEFT_EYE] - points[RIGHT_EYE]))), 0.15 * shapes.unit)
    face_up = eyes_mid - mouth_mid
    face_up /= max(float(np.hypot(*face_up)), 1e-6)
    brow, eye_radius = 0.45 * eye_distance, 0.32 * eye_distance
    features = [
        Capsule(tuple(points[eye]), tuple(points[eye] + brow * face_up), eye_radius, eye_radius)
        for eye in (LEFT_EYE, RIGHT_EYE)
    ]
    features.append(
        Capsule(tuple(points[MOUTH_LEFT]), tuple(points[MOUTH_RIGHT]), *(0.28 * eye_distance,) * 2)
    )
    places = face_mask & ~draw_capsules(frame, features)
    places |= draw_capsules(frame, shapes.neck + shapes.hands["right"] + shapes.hands["left"])
    return places & skin


# ------------------------------------------------------------------------------------------ the backend


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
        keep_out = regions.excluded | face_mask | ~person_mask
        # The worn garment is replaced: the category's region, and the old garment wherever it is (its
        # sleeves on the arms included: the lite inpainter fills an uncovered arm with skin).
        replace = regions.target | (regions.band & (garment | skin)) | estimate.grown_garment
        replace &= ~keep_out & ~(regions.arms & ~estimate.grown_garment)
        bare = bare_skin(person, replace, estimate, skin_model)
        replace &= ~bare
        on_person = person_mask & ~face_mask
        hands = hands_in_front(person, shapes, full, skin_model, on_person)
        if category is not GarmentCategory.LOWER_BODY:
            # A top's or a dress's thin straps, wherever they run above the waist (on kept skin, outside the
            # category's region): replaced with the garment, and past the person's outline with its rim
            # (below). Below the waist a skin-coloured skirt's or trousers' print is thin dark lines
            # joined to the top.
            allowed = on_person & ~hands & draw_polygons(full, shapes.above_waist)
            straps = strap_lines(person, estimate.grown_garment, allowed, skin_model)
            bare &= ~straps
            replace |= straps
        replace |= garment_beside_the_hands(person, shapes, full, skin_model, replace, on_person, hands)
        lower = category is GarmentCategory.LOWER_BODY
        if lower and _continues_above_high_waist(garment, person_mask, shapes):
            # A dress or a long top, not trousers: new trousers start at a regular waistband, the worn
            # garment above it stays (a top tucked in), rather than a bare midriff cut into a dress.
            replace &= draw_polygons(full, shapes.below_waistband)
        # Drawn and grown at a quarter of the size (a large dilation at full size costs more than GrabCut).
        quarter = Frame(max(8, height // 4), max(8, width // 4), scale=max(8, width // 4) / width)
        reach = category_reach(shapes, category, quarter, carve_hands_feet=False)
        reach = resize_mask(reach, height, width) > 0.5
        # Hands and feet stay in front of the new garment, but only the hands and feet themselves: the
        # backdrop around a hand by the hip (inside its capsule) is where a wider garment shows, and the
        # trousers around a hand in their pocket are where a longer top hangs (in front of them, they
        # stood as a black mitten on the new top).
        reach &= (
            ~replace
            & ~face_mask
            & ~(in_front_of_garments(regions, shapes, full, hands, on_person) & person_mask)
        )
        clothing = np.zeros((height, width), np.uint8)
        clothing[reach] = mask_kinds.MAY_COVER
        clothing[reach & ~person_mask] = mask_kinds.MAY_COVER_BACKDROP
        clothing[bare] = mask_kinds.MAY_COVER_SKIN
        clothing[replace] = mask_kinds.REPLACE_NEAREST
        clothing[replace & skin_underneath(shapes, category, full)] = mask_kinds.REPLACE_SKIN
        clothing[replace & regions.arms] = mask_kinds.REPLACE_LIMB
        # An old collar on the neck above the torso: skin under it, which only a high-necked garment covers
        # (like an old sleeve on an arm).
        clothing[replace & regions.neck & ~draw_polygons(full, shapes.torso)] = mask_kinds.REPLACE_LIMB
        if category is GarmentCategory.UPPER_BODY:
            underneath = lower_garment_underneath(shapes, full)
            clothing[replace & underneath & ~regions.arms] = mask_kinds.REPLACE_BELOW
        # The old garment away from the body (a flared skirt, cloth between the legs): the backdrop is
        # behind it. Drawn like the reach, grown less: the body's own outline plus a close-fitting cut.
        near_body = body_outline(shapes, category, quarter, growth=OFF_BODY_GROWTH)
        # A collar below the chin is on the neck (not in the garment's reach): skin is under it, see above.
        off_body = replace & ~(resize_mask(near_body, height, width) > 0.5) & ~regions.arms & ~regions.neck
        clothing[off_body] = mask_kinds.REPLACE_OFF_BODY
        rim_size = 2 * round(GARMENT_RIM * max(height, width)) + 1
        rim = cv2.dilate(
            replace.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (rim_size, rim_size))
        ).astype(bool)
        clothing[rim & ~person_mask & ~face_mask] = mask_kinds.REPLACE_OFF_BODY
        clothing[~person_mask & (clothing == 0)] = mask_kinds.BACKDROP
        # The person's own skin, where it shows and is not edited: the lite inpainter's colour for bare
        # skin the new garment leaves uncovered (never the old garment's pixels).
        visible_skin = _visible_skin(body, shapes, full, face_mask, estimate.skin & person_mask)
        clothing[visible_skin & (clothing == 0)] = mask_kinds.SKIN_SOURCE

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
            clothing_mask=clothing,
            face_mask=face_mask.astype(np.uint8) * np.uint8(255),
            person_mask=person_mask.astype(np.uint8) * np.uint8(255),
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
        everyone = foreground
        foreground = components_touching(foreground, body)
        others = int(everyone.sum()) - int(foreground.sum())
        if others > OTHER_PERSON_FRACTION * max(1, int(foreground.sum())):
            # MediaPipe Pose follows the most prominent person; the others are left as they are.
            logger.warning(
                "the person photo holds more than one person: trying the garment on the most prominent one "
                "(%.0f %% of the foreground belongs to others)",
                100.0 * others / max(1, int(everyone.sum())),
            )
        if not foreground.any():
            raise StageInputError(NO_PERSON_FOUND, field="person")
        # Upsample the probability (not the binary mask) so the outline is smooth at full size.
        return resize_mask(np.where(foreground, probability, 0.0), height, width) > PERSON_THRESHOLD
