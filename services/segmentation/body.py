"""Body regions of the lite segmentation, drawn from MediaPipe's 33 pose landmarks.

A body frame (``up`` from hips to shoulders, ``side`` from the person's right to left, ``unit`` ~ the
shoulder width) in which every region is drawn: the torso polygon under a neckline, arm and leg capsules,
hands, feet, and the "head column" above the shoulders' top edge (face, hair, neck); then the regions a
garment category involves (:func:`category_regions`), rasterised in any :class:`Frame`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from tryon.types import GarmentCategory
from tryon.vision.mediapipe_landmarks import (
    LEFT_ANKLE,
    LEFT_ELBOW,
    LEFT_EYE,
    LEFT_FOOT,
    LEFT_HEEL,
    LEFT_HIP,
    LEFT_INDEX,
    LEFT_KNEE,
    LEFT_PINKY,
    LEFT_SHOULDER,
    LEFT_THUMB,
    LEFT_WRIST,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    RIGHT_ANKLE,
    RIGHT_ELBOW,
    RIGHT_EYE,
    RIGHT_FOOT,
    RIGHT_HEEL,
    RIGHT_HIP,
    RIGHT_INDEX,
    RIGHT_KNEE,
    RIGHT_PINKY,
    RIGHT_SHOULDER,
    RIGHT_THUMB,
    RIGHT_WRIST,
)  # fmt: skip

BoolMask = npt.NDArray[np.bool_]
Points = npt.NDArray[np.float64]


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
#: Bare legs under a worn garment are this share as wide as the legs' capsules (drawn with room for loose
#: trousers: a thigh radius of 0.27 body units, where a thigh is ~0.2 units across at half its width).
BARE_LEG_WIDTH = 0.75
#: The shoulders' tops (see :attr:`BodyShapes.shoulder_tops`) rise this many body units above the torso's
#: top edge at the neck's side.
SHOULDER_TOP_RISE = 0.15
#: A dress may reach this many body units beside the ankles (plus half their distance): a full skirt's
#: hem. Narrower, a flared dress's skirt was cut along the legs' capsules below the knees, in steps.
SKIRT_FLARE = 1.3


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
    shoulder_tops: list[Points]  # above the torso's top edge, each side of the neck: a high garment's yoke
    chest: Points  # the upper torso: covered by any top (crop tops included)
    above_waist: Points  # half-plane above the natural waist
    above_hips: Points  # half-plane above the hip joints
    pelvis: Points  # waist to crotch: where trousers or a skirt start
    skirt: Points  # hips flaring out to below the knees: a dress's skirt
    flare: Points  # hips flaring out to below the ankles, as wide as a full skirt: where a dress may reach
    below_mid_thigh: Points  # half-plane a top's hem never reaches
    below_high_waist: Points  # half-plane trousers never start above
    below_high_waist_strip: Points  # half-plane a little lower: the strip between is the high waist's edge
    below_waistband: Points  # half-plane below a regular waistband (the top of the pelvis region)
    arms: dict[str, list[Capsule]]  # "left" / "right" (the person's): upper arm, forearm
    sleeves: list[Capsule]  # the upper arms' top halves, where short sleeves are
    hands: dict[str, list[Capsule]]
    legs: dict[str, list[Capsule]]  # thigh, shin (to the ankle)
    feet: dict[str, list[Capsule]]  # drawn by :func:`draw_feet`, below the ankles only
    below_ankles: dict[str, Points]  # half-plane below each ankle joint
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
    # The top edge runs level from the outer shoulder to the neck's side; the shoulders' tops (trapezius)
    # rise towards the neck, and a crew neck or a high yoke covers them up to the collar. Between the top
    # edge and a line rising to the neck's base: the neck's kind of place (garment only where GrabCut
    # finds it, skin under it).
    rise = SHOULDER_TOP_RISE
    shoulder_tops = [
        np.array(
            [
                at(shoulder, outward * 0.16, -0.02),  # the torso's top edge, outer shoulder to neck ...
                at(shoulder, outward * 0.08, 0.1),
                at(shoulder, -outward * 0.05, 0.15),
                at(shoulder_mid, outward * 0.2, 0.17),
                at(shoulder_mid, outward * 0.2, 0.17 + rise),  # ... and back, rising towards the neck
                at(shoulder, -outward * 0.05, 0.15 + 0.66 * rise),
                at(shoulder, outward * 0.08, 0.1 + 0.4 * rise),
            ]
        )
        for shoulder, outward in ((rs, -1.0), (ls, 1.0))
    ]
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
    flare_half_width = SKIRT_FLARE * unit + 0.5 * abs(float(np.dot(la - ra, side)))
    flare_hem = at(ankle_mid, 0.0, -0.15)
    flare = np.array(
        [at(rh, -0.3, 0.0), at(lh, 0.3, 0.0), flare_hem + side * flare_half_width,
         flare_hem - side * flare_half_width]
    )  # fmt: skip

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
        shoulder_tops=shoulder_tops,
        chest=chest,
        above_waist=half_plane(waist, above=True),
        above_hips=half_plane(hip_mid, above=True),
        pelvis=pelvis,
        skirt=skirt,
        flare=flare,
        below_mid_thigh=half_plane(hip_mid + 0.55 * (knee_mid - hip_mid), above=False),
        below_high_waist=half_plane(at(hip_mid, 0.0, 0.6), above=False),
        below_high_waist_strip=half_plane(at(hip_mid, 0.0, 0.52), above=False),
        below_waistband=half_plane(at(hip_mid, 0.0, 0.3), above=False),
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
        below_ankles={
            "right": half_plane(p[RIGHT_ANKLE], above=False),
            "left": half_plane(p[LEFT_ANKLE], above=False),
        },
        thigh_cores=[thigh_core(RIGHT_HIP, RIGHT_KNEE), thigh_core(LEFT_HIP, LEFT_KNEE)],
    )


def draw_feet(frame: Frame, shapes: BodyShapes, sides: tuple[str, ...] = ("right", "left")) -> BoolMask:
    """The feet: their capsules, below the ankle joints only. The capsules' round tops reach above the
    ankle, where new trousers' hems land: carved out of the new garment there, they cut a notch into the
    hem that showed the old trousers (or the ankle) through it."""
    feet = np.zeros((frame.height, frame.width), bool)
    for side in sides:
        feet |= draw_capsules(frame, shapes.feet[side]) & draw_polygons(frame, shapes.below_ankles[side])
    return feet


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
    neck = draw_capsules(frame, shapes.neck) | draw_polygons(frame, *shapes.shoulder_tops)
    head = draw_polygons(frame, shapes.head) & ~arms & ~hands & ~neck  # raised arms are arms, not head
    feet = draw_feet(frame, shapes)
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


def category_reach(
    shapes: BodyShapes,
    category: GarmentCategory,
    frame: Frame,
    growth: float = 0.2,
    carve_hands_feet: bool = True,
    leg_width: float = 1.0,
    flared: bool = True,
) -> BoolMask:
    """Where a new garment of ``category`` may reach on this body, whatever the worn one covers.

    Tops: the torso, the shoulders' tops (a high neckline) and both arms (long sleeves), down to mid-thigh
    (long tops); bottoms: waist to ankles; dresses: shoulders to ankles with the arms, and (``flared``)
    a full skirt's flare down to below the ankles. Grown by
    ``growth`` x ``unit`` (loose cuts). The rest of the head column is never reached, nor (unless
    ``carve_hands_feet`` is off) the hands' and feet's capsules. The legs are ``leg_width`` times as wide
    as their capsules (:data:`BARE_LEG_WIDTH`: the legs themselves).
    """
    arms = shapes.arms["right"] + shapes.arms["left"]
    legs = _legs(shapes, leg_width)
    if category is GarmentCategory.UPPER_BODY:
        reach = draw_polygons(frame, shapes.torso, shapes.pelvis, *shapes.shoulder_tops)
        reach |= draw_capsules(frame, arms)
        reach &= ~draw_polygons(frame, shapes.below_mid_thigh)
    elif category is GarmentCategory.LOWER_BODY:
        reach = draw_polygons(frame, shapes.pelvis) | draw_capsules(frame, legs)
        reach &= draw_polygons(frame, shapes.below_high_waist)
    else:
        skirt = (shapes.skirt, shapes.flare) if flared else (shapes.skirt,)
        reach = draw_polygons(frame, shapes.torso, shapes.pelvis, *skirt, *shapes.shoulder_tops)
        reach |= draw_capsules(frame, arms + legs)
    radius = max(1, round(growth * shapes.unit * frame.scale))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    reach = cv2.dilate(reach.view(np.uint8), kernel).view(np.bool_)
    # The head column is never reached, but the shoulders' tops in it are (a high neckline's yoke; and a
    # worn one there is on the body, not standing off it), and so are the shoulders' caps round the joints,
    # grown like the rest but off the neck (a top's shoulder seam lies on them): without them a wedge of
    # the column beside the outer shoulder cut a notch into every new top's shoulder.
    caps = cv2.dilate(draw_capsules(frame, shapes.sleeves).view(np.uint8), kernel).view(np.bool_)
    on_the_shoulders = draw_polygons(frame, *shapes.shoulder_tops) | (
        caps & ~draw_capsules(frame, shapes.neck)
    )
    reach &= ~(draw_polygons(frame, shapes.head) & ~on_the_shoulders)
    if not carve_hands_feet:
        return reach
    hands_feet = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"]) | draw_feet(frame, shapes)
    return reach & ~hands_feet


def body_outline(shapes: BodyShapes, category: GarmentCategory, frame: Frame, growth: float) -> BoolMask:
    """Where the body itself is under a worn garment of ``category``, grown by ``growth`` x ``unit`` (a
    close-fitting cut): the category's reach with the legs at :data:`BARE_LEG_WIDTH`. The worn garment
    beyond it (wide trousers, a skirt's flare, cloth between the legs) stands off the body.

    For trousers, between the legs below the pelvis only the legs themselves count: grown, two slim legs
    close the gap between them, and a skirt's cloth there read as body that every pair of trousers leaves
    bare (a dress covers it: there it stays).
    """
    outline = category_reach(shapes, category, frame, growth=growth, leg_width=BARE_LEG_WIDTH, flared=False)
    if category is not GarmentCategory.LOWER_BODY:
        return outline
    right, left = shapes.legs["right"], shapes.legs["left"]
    between = draw_polygons(
        frame, np.array([right[0].start, right[0].end, right[1].end, left[1].end, left[0].end, left[0].start])
    )
    legs = draw_capsules(frame, _legs(shapes, BARE_LEG_WIDTH)) | draw_polygons(frame, shapes.pelvis)
    return outline & ~(between & ~legs)


def _legs(shapes: BodyShapes, width: float) -> list[Capsule]:
    """Both legs' capsules, ``width`` times as wide."""
    return [
        Capsule(leg.start, leg.end, width * leg.start_radius, width * leg.end_radius)
        for leg in shapes.legs["right"] + shapes.legs["left"]
    ]


def lower_garment_underneath(shapes: BodyShapes, frame: Frame) -> BoolMask:
    """Where the lower garment goes on under a worn top that hangs over it: below a regular waistband.

    Above it, between a short new top and the trousers, is a bare midriff (:func:`skin_underneath`):
    extended up to the natural waist, a skirt's waistband tucked under the old top stood over the belly as
    a smeared band.
    """
    return draw_polygons(frame, shapes.below_waistband)


def skin_underneath(shapes: BodyShapes, category: GarmentCategory, frame: Frame) -> BoolMask:
    """Where bare skin is under a worn garment that the new one leaves uncovered.

    The arms; for dresses the torso above the waist (a neckline, a midriff), for tops down to a regular
    waistband (trousers under a long top start there, see ``REPLACE_BELOW``; above it, between a short new
    top and the trousers, is a bare midriff); for bottoms and dresses the legs below the hips.
    """
    skin = draw_capsules(frame, shapes.arms["right"] + shapes.arms["left"])
    if category is not GarmentCategory.UPPER_BODY:
        # The legs themselves, not the room the legs' capsules leave for loose trousers: what a wide skirt
        # or loose trousers cover beside them is the backdrop.
        skin |= draw_capsules(frame, _legs(shapes, BARE_LEG_WIDTH)) & ~draw_polygons(frame, shapes.above_hips)
    if category is not GarmentCategory.LOWER_BODY:
        if category is GarmentCategory.UPPER_BODY:
            above = ~lower_garment_underneath(shapes, frame)
        else:
            above = draw_polygons(frame, shapes.above_waist)
        skin |= draw_polygons(frame, shapes.torso) & above
    return skin
