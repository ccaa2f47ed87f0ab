"""Garment warp: cut the garment out of its photo, find its landmarks, align it to the body.

One CPU implementation serves both the lite and the full pipeline.

1. **Separation.** An RGBA cut-out keeps its alpha. Otherwise the background colour is estimated from the
   photo's border; pixels far from it are garment; the largest component is kept and its holes filled (so
   white prints on a white background stay part of the garment).
   Supported: flat-lay photos and product shots on a plain, roughly uniform background (studio white,
   grey, any single colour). Not supported: garments photographed on a person or mannequin, hangers with
   visible hooks, busy or textured backgrounds: these are refused with a clear error rather than guessed.
2. **Landmarks** from the silhouette: shoulder corners, neckline, hem corners, sleeve ends (upper body);
   waist corners and leg ends (lower body); shoulders and hem corners (dress). The garment's inner back,
   seen through a crew neck in the photo (with its brand label), is made transparent: worn, it is behind
   the neck (:func:`inner_back`).
3. **Alignment.** A similarity transform fitted on the garment's anchor pair (shoulders or waist) onto the
   body's keypoints keeps the garment's own proportions; a thin-plate spline through all landmark pairs then
   bends it onto the body (hem to the hips' width, legs to the ankles).
4. **Output.** One ``cv2.remap`` of the full-resolution garment through a spline map evaluated on a coarse
   grid: RGBA in the person's frame, alpha antialiased.

Sides: a garment photographed from the front shows the wearer's right on the image left, like the person
photo, so image-left garment landmarks go to image-left body keypoints (COCO "right_*").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from services.warp.tps import ThinPlateSpline
from tryon.imaging import MIN_GARMENT_SIDE
from tryon.stages import SINGLE_IMPLEMENTATION
from tryon.types import (
    KP,
    BackendInfo,
    GarmentCategory,
    Keypoints,
    StageInputError,
    WarpInput,
    WarpOutput,
)
from tryon.vision.images import downscale

#: Separation runs at this long side; the mask is then upsampled to the garment photo.
SEPARATION_LONG_SIDE = 256
#: A garment whose box (grown by SEPARATION_MARGIN of its long side, and by at least that many pixels of
#: the separation's resolution) is this many times smaller than the photo is separated once more on that
#: box alone, at the same long side: photographed small in a wide frame, a long sleeve's gap beside the
#: torso (a few pixels at the photo's scale) closed at the frame's resolution and the sleeves were taken
#: for the torso (00470 in twice its frame: shoulders 1.8 times as far apart, no sleeves).
SEPARATION_ZOOM_MIN = 1.5
SEPARATION_MARGIN = 0.05
SEPARATION_MARGIN_PIXELS = 3
#: A garment laid a little turned (a flat lay straightened by hand) is turned upright before its landmarks
#: are read: by the angle within UPRIGHT_MAX_DEGREES (in UPRIGHT_STEP_DEGREES) that makes its silhouette
#: (at UPRIGHT_LONG_SIDE) most symmetric about its mirror axis, when that angle is at least
#: UPRIGHT_MIN_DEGREES and more symmetric than as photographed by UPRIGHT_MIN_GAIN (IoU with its mirror
#: image). Turned by 3 degrees, the camisole's straps were read on their sides and its hem's width on one
#: slanted row (warped: IoU 0.64 with the upright's). The sample photos' own garments come out most
#: symmetric within 1.5 degrees of upright (an asymmetric ruffle, a hand-laid hem): left as photographed.
UPRIGHT_MIN_DEGREES = 2.0
UPRIGHT_MAX_DEGREES = 6.0
UPRIGHT_STEP_DEGREES = 0.5
UPRIGHT_MIN_GAIN = 0.02
UPRIGHT_LONG_SIDE = 128
#: A border whose colours spread more than this (mean absolute deviation, 0-255) is not a plain background.
MAX_BORDER_SPREAD = 18.0
#: A pixel is background-coloured when its colour is within this distance (0-255 RGB) of the backdrop
#: interpolated from the border there: this many times the interpolation's own median error just inside
#: the border, plus 4, within the range below.
BACKGROUND_NOISE_FACTOR = 3.0
BACKGROUND_THRESHOLD_RANGE = (7.0, 24.0)
#: The separation's colour refinement (GrabCut at half SEPARATION_LONG_SIDE): pixels farther than this
#: (0-255 RGB distance) from the backdrop are surely garment (a lit patch of backdrop stays nearer than
#: this); iterations; GrabCut's RNG seed (deterministic output).
REFINE_SURE_DISTANCE = 60.0
REFINE_ITERATIONS = 2
#: Only backdrop regions at least this wide (px at SEPARATION_LONG_SIDE) are taken off the garment.
REFINE_MIN_WIDTH = 7
REFINE_SEED = 4321
#: Minimum width (colour-distance units) of the alpha ramp across the garment's edge.
EDGE_RAMP_MIN = 8.0
#: Garment and backdrop colours this many separation thresholds apart are told apart at the edge by
#: colour (alpha = the pixel's share of the garment's colour); closer, alpha ramps with the distance.
EDGE_CONTRAST_MIN = 3.0
#: Garment pixels within this many separation thresholds of the backdrop's colour are "light parts" (white
#: stripes on white); where more than LIGHT_PART_SHARE of the garment near an edge pixel is light, a
#: backdrop-coloured edge pixel is read by shape, not colour (see :func:`_place_edge`).
LIGHT_PART_DISTANCE = 2.0
LIGHT_PART_SHARE = 0.15
#: The person check (a face in the garment photo) runs at this long side; faces narrower than this
#: fraction of the photo's width are ignored; "backdrop beside the face" means within this colour distance.
PERSON_CHECK_LONG_SIDE = 320
MIN_FACE_FRACTION = 0.06
BACKDROP_MATCH = 30.0
#: The spline map is evaluated every this many pixels of the person frame, then interpolated.
MAP_GRID_STEP = 8
#: Runs of a trouser's row narrower than this share of the silhouette's width are specks, not legs.
LEG_SPECK = 0.03
#: Keypoints below this confidence are treated as missing.
MIN_CONFIDENCE = 0.05
#: Garment shoulders sit slightly outside the shoulder joints (the joint is inside the body's outline).
SHOULDER_OUTSET = 0.12
#: The body at the hips is wider than the distance between the hip joints.
HIP_OUTSET = 0.30
#: The torso's half-width is this percentile of the symmetric half-widths over the rows below the sleeves.
TORSO_WIDTH_PERCENTILE = 50
#: Rows just above a top's hem narrower than this fraction of the rows' median width mean the wider rows
#: held long sleeves laid along the body: the torso's width is taken above the hem instead.
SLEEVES_MERGED_RATIO = 0.85
#: The shoulder landmarks sit this fraction of the torso's half-width from the axis.
SHOULDER_FRACTION = 0.85
#: ... and land this fraction of the shoulders' distance above the shoulder joints (pose keypoints are
#: joints; the top of the shoulder, where a garment's shoulder seam lies, is 0.10-0.17 of the shoulders'
#: distance above them on the sample people, a little less where the seam is, outside the joint).
SHOULDER_LIFT = 0.10
#: Armholes (:func:`_shoulder_reach`): a silhouette's top edge dropping by more than this fraction of the
#: torso's half-width within :data:`ARMHOLE_WINDOW` of it, outwards from the axis, is a sleeveless
#: garment's armhole (a strap's or a bodice's outer edge), sought from :data:`ARMHOLE_SEARCH_FROM` of the
#: half-width out to the shoulder landmarks' columns.
ARMHOLE_DROP = 0.3
ARMHOLE_WINDOW = 0.05
ARMHOLE_SEARCH_FROM = 0.2
#: A sleeveless garment's straps (its top inside the armholes, within this fraction of the torso's
#: half-width of the highest point there) lie on the middle of the shoulders: this fraction of the shoulder
#: joints' distance either side of their middle, halfway between the neck's side (0.13-0.15) and the
#: shoulder's edge (0.62, :data:`SHOULDER_OUTSET`). Laid on the shoulders' edges like a sleeved top's
#: shoulder seams, a camisole's straps came out 1.2 times as far apart as the joints and its body 1.5 times
#: as wide as the chest: a flat garment is half its girth wide, and worn, its sides turn away out of view.
STRAP_TOLERANCE = 0.1
STRAP_HALF_WIDTH = 0.38
#: Inner back (:func:`inner_back`): the neck points are sought this far from the axis (fractions of half the
#: shoulder landmarks' distance); the neck is at least this wide (its radius, same fraction); the
#: shoulders fall from the neck points by at least this share of its radius over half a radius outward.
NECK_SEARCH = (0.05, 0.7)
NECK_MIN_RADIUS = 0.15
NECK_SHOULDER_SLOPE = 0.04
#: The front neckline's depth below the neck points (fractions of the neck's radius) and roundness (the
#: curve's exponent: 0.5 an ellipse, 1 a parabola).
NECKLINE_DEPTH = (0.12, 1.1)
NECKLINE_POWERS = (0.5, 0.75, 1.0)
#: The edge along it: at least this strong (Lab Sobel, summed over the channels) and this many times the
#: texture of the fabric below it.
NECKLINE_EDGE_MIN = 8.0
NECKLINE_EDGE_RATIO = 4.0
#: ... and at least this many times as strong as any curve more than this far (fraction of the neck's
#: radius) above or below it: one edge, not a stripe among many.
NECKLINE_UNIQUE = 1.3
NECKLINE_RIVAL_GAP = 0.2
#: The inner back is cut this far (fraction of the neck's radius) below the front neckline found.
NECKLINE_MARGIN = 0.03
#: A neckline with a collar (one :func:`inner_back` finds) lies on the neck's base: its corners this
#: fraction of the shoulder joints' distance either side of their middle (the sample people's necks are
#: 0.13-0.15 of it wide at the sides; a tee's crew neck, 16-18 cm across on 32-35 cm between the joints,
#: 0.25) and this fraction above them (where the neck meets the shoulders' slope: 0.15-0.2), or higher
#: where the similarity puts it higher. The similarity through the shoulders alone put a loose top's
#: collar up to twice as wide as the neck and below its base, a crew neck worn as a scoop neck. (0.2 wide
#: bent the print below the collar more.)
NECK_HALF_WIDTH = 0.25
NECK_RISE = 0.2
#: A sleeve's seam is its rows within this many columns of its side at the cut (the torso's side).
SEAM_COLUMNS = 3
#: A short sleeve hanging along the arm is at most this fraction of the shoulders' width (the garment's
#: shoulder points on the body) wide: a wide sleeve's inner part folds into the armpit when worn.
SLEEVE_BAND_MAX = 0.4
#: ... and reaches at most this fraction of its width out beyond the arm's line through the shoulder's edge.
SLEEVE_FLARE = 0.15
#: ... and lies over the torso's side by at most this fraction of its width.
SEAM_OVERLAP = 0.3
#: The sleeve's soft edge (alpha <= 127) reaches this many pixels (garment photo) beyond its opaque part.
RIM_PIXELS = 6
#: Garment pixels within BACKDROP_RIM_DISTANCE of the backdrop's colour (per channel), NOTCH_PIXELS or less
#: from the outside and joined to it through such pixels are backdrop left inside the garment: they take
#: the mean colour of the opaque (alpha >= OPAQUE) garment pixels within this box (px, garment photo).
OPAQUE = 250
EDGE_FILL_KERNEL = 33
NOTCH_PIXELS = 16
BACKDROP_RIM_DISTANCE = 30.0
#: A sleeve is this share of the silhouette's pixels at least (outside the torso's band).
SLEEVE_MIN_PIXELS_FRACTION = 0.01
#: A long sleeve bends with the arm where the forearm turns off the upper arm's line by more than this
#: (degrees): below it one rigid turn along the arm is as good.
ELBOW_BEND_MIN = 15.0
#: ... and only when the elbow falls before this share of the sleeve's length (a sleeve ending at the elbow
#: has no forearm part to bend).
ELBOW_SPLIT_MAX = 0.85
#: A bent sleeve is placed by a spline through a grid of its points, this many across its width.
SLEEVE_GRID_ACROSS = 3.0
#: A long sleeve laid flat is a tube pressed flat, half its girth wide; worn round an arm and seen from the
#: front it spans its diameter, 2 / pi of that (a close fit; a loose one drapes a little wider). It is
#: narrowed across its axis to that, but never below :data:`SLEEVE_WORN_MIN` of the shoulders' width (the
#: garment's shoulder points on the body): an arm and some ease. Laid flat at the torso's scale, the
#: floral top's sleeves were ~1.7 times as wide as 01861's arms.
SLEEVE_WORN_SHARE = 2.0 / np.pi
SLEEVE_WORN_MIN = 0.3
#: Slits narrower than this share of the shoulders' width between the torso and a long sleeve are closed
#: with the garment's colour (the fabric under the arm; see :func:`_close_seams`).
SEAM_CLOSE = 0.1
#: Length of a regular top in the photo, hem below the shoulders, in shoulder widths (the landmarks above):
#: such a top ends on the hip band; shorter and longer cuts end proportionally higher or lower.
TOP_REGULAR_LENGTH = 2.3
TOP_LENGTH_RANGE = (0.45, 1.3)
#: A top's (and a dress's) vertical scale stays within this range of its horizontal scale (from the
#: shoulders). With the sleeves warped as their own layers the torso keeps the shoulders' width, so a
#: vertical squash shows as a print squashed by that much: at 0.7, SIFT matched half as many print
#: features (bench/eval_lite.py).
VERTICAL_SCALE_RANGE = (0.85, 1.0)
#: The hip band, below the hip joints by this fraction of the shoulder-to-hip distance.
HIP_BAND = 0.12
#: Garment waistbands sit above the hip joints, by this fraction of the shoulder-to-hip distance.
WAIST_RAISE = 0.2

Point = tuple[float, float]


class GarmentWarper:
    """StageBackend[WarpInput, WarpOutput]: separation, landmarks, similarity + TPS, remap."""

    def setup(self) -> None:
        # Nothing to load; one small run pays OpenCV's first-call costs before serving.
        garment = np.full((256, 192, 3), 240, np.uint8)
        cv2.rectangle(garment, (48, 32), (144, 224), (200, 30, 30), -1)
        keypoints = np.zeros((18, 3), np.float32)
        keypoints[KP["right_shoulder"]] = (60, 60, 1)
        keypoints[KP["left_shoulder"]] = (130, 60, 1)
        keypoints[KP["right_hip"]] = (70, 180, 1)
        keypoints[KP["left_hip"]] = (120, 180, 1)
        self.run(WarpInput(garment=garment, keypoints=keypoints, target_size=(256, 192)))

    def info(self) -> BackendInfo:
        return BackendInfo(stage="warp", backend=SINGLE_IMPLEMENTATION, device="cpu")

    def run(self, inputs: WarpInput, /) -> WarpOutput:
        height, width = inputs.target_size
        if height < 16 or width < 16:
            raise StageInputError("target size must be at least 16x16", field="target_size")
        _check_keypoints(inputs.keypoints)
        refuse_person_photo(inputs.garment)
        garment_rgb, alpha = separate_garment(inputs.garment)
        garment_rgb, alpha, turn = upright(garment_rgb, alpha)
        landmarks = find_landmarks(alpha, inputs.category)
        neckline = None
        if inputs.category is not GarmentCategory.LOWER_BODY:
            neckline = inner_back(garment_rgb, alpha, landmarks)
            alpha = without_inner_back(alpha, neckline)
        pairs = body_targets(landmarks, inputs.keypoints, inputs.category, alpha > 127, neckline)
        warped = warp_in_layers(garment_rgb, alpha, landmarks, pairs, (height, width), inputs.keypoints)
        back = cv2.invertAffineTransform(turn)  # the landmarks in the photo as it was given
        return WarpOutput(
            warped_garment=warped,
            garment_landmarks={
                name: (float(x), float(y))
                for name, (x, y) in ((n, _apply(back, p)) for n, p in landmarks.items())
            },
        )


# ----------------------------------------------------------------------------------------- person photos


_face_cascade: cv2.CascadeClassifier | None = None


def refuse_person_photo(garment: npt.NDArray[np.uint8]) -> None:
    """Raise :class:`StageInputError` when the garment photo shows a person (a face with backdrop beside it).

    OpenCV's Haar frontal-face cascade (bundled with OpenCV, no weights to fetch) finds faces; a face
    printed on a garment has fabric on both sides, a person's face has the photo's backdrop on at least
    one side, which tells the two apart. Headless crops of a person are not caught.
    """
    global _face_cascade
    if garment.ndim != 3 or garment.shape[2] not in (3, 4) or min(garment.shape[:2]) < 32:
        return  # separate_garment reports malformed garments
    if garment.shape[2] == 4 and garment[..., 3].min() < 250:
        return  # a cut-out: no backdrop to compare with
    if _face_cascade is None:
        _face_cascade = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        )
    small = downscale(np.ascontiguousarray(garment[..., :3]), PERSON_CHECK_LONG_SIDE)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    width = gray.shape[1]
    min_face = max(20, round(MIN_FACE_FRACTION * width))
    faces = _face_cascade.detectMultiScale(
        gray, scaleFactor=1.15, minNeighbors=5, minSize=(min_face, min_face)
    )
    if len(faces) == 0:
        return
    pixels = small.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    median = np.median(border, axis=0)
    # The backdrop where it would be beside the face, interpolated from the border: against the border's
    # one median colour, a backdrop shading from top to bottom matched a printed photo's own light
    # background beside its face, and the T-shirt was refused as a person.
    backdrop = _border_surface(pixels, median, float(np.abs(border - median).mean()))
    for x, y, w, h in faces:
        rows = slice(y + h // 4, y + 3 * h // 4)
        sides = []
        for x0, x1 in ((x - 1.3 * w, x - 0.8 * w), (x + 1.8 * w, x + 2.3 * w)):
            x0, x1 = round(x0), round(x1)
            if x0 >= 0 and x1 <= width:
                beside = np.median(pixels[rows, x0:x1].reshape(-1, 3), axis=0)
                expected = np.median(backdrop[rows, x0:x1].reshape(-1, 3), axis=0)
                sides.append(float(np.linalg.norm(beside - expected)) < BACKDROP_MATCH)
        if sides and all(sides):
            raise StageInputError(
                "garment: the photo shows a person (a face with the backdrop beside it); the lite try-on "
                "needs a product photo of the garment alone (flat lay, plain background or a cut-out)",
                field="garment",
            )


# ----------------------------------------------------------------------------------------- separation


def separate_garment(garment: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Return (RGB, alpha) of the garment photo; alpha 0 = background, 255 = garment."""
    if garment.ndim != 3 or garment.shape[2] not in (3, 4) or garment.dtype != np.uint8:
        raise StageInputError("garment must be an RGB or RGBA uint8 image", field="garment")
    if min(garment.shape[:2]) < MIN_GARMENT_SIDE:
        raise StageInputError(
            f"garment image is too small (at least {MIN_GARMENT_SIDE} px per side)", field="garment"
        )
    rgb = np.ascontiguousarray(garment[..., :3])
    if garment.shape[2] == 4 and garment[..., 3].min() < 250:
        alpha = garment[..., 3]
        coverage = (alpha > 127).mean()
        if coverage < 0.02:
            raise StageInputError(
                "garment could not be separated: its alpha channel is empty", field="garment"
            )
        return rgb, _largest_component(alpha > 127, fill_holes=False, soft=alpha)
    return _separate_from_background(rgb)


def upright(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """The separated garment turned upright (see :data:`UPRIGHT_MAX_DEGREES`), and the 2x3 turn applied to
    the photo's pixels (the identity when it already was)."""
    height, width = alpha.shape
    scale = UPRIGHT_LONG_SIDE / max(height, width)
    small = cv2.resize(
        alpha, (max(8, round(width * scale)), max(8, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    pad = round(0.15 * max(small.shape))
    small = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    centre = (small.shape[1] / 2, small.shape[0] / 2)

    def symmetry(angle: float) -> float:
        turned = small if angle == 0 else cv2.warpAffine(
            small, cv2.getRotationMatrix2D(centre, angle, 1.0), small.shape[::-1]
        )  # fmt: skip
        mask = turned > 127
        rows = np.flatnonzero(mask.any(axis=1))
        if len(rows) < 4:
            return 0.0
        axis = _mirror_axis(mask, rows)
        mirrored = cv2.warpAffine(
            turned, np.array([[-1.0, 0.0, 2.0 * axis], [0.0, 1.0, 0.0]]), turned.shape[::-1]
        ) > 127  # fmt: skip
        return float((mask & mirrored).sum() / max(1, (mask | mirrored).sum()))

    angles = np.arange(-UPRIGHT_MAX_DEGREES, UPRIGHT_MAX_DEGREES + 1e-6, UPRIGHT_STEP_DEGREES)
    scores = [symmetry(float(angle)) for angle in angles]
    best = int(np.argmax(scores))
    as_photographed = scores[int(np.argmin(np.abs(angles)))]
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if abs(angles[best]) < UPRIGHT_MIN_DEGREES or scores[best] < as_photographed + UPRIGHT_MIN_GAIN:
        return rgb, alpha, identity
    # About the garment's centre, in a frame grown so its corners stay inside.
    ys, xs = np.nonzero(alpha > 127)
    grow = round(0.1 * max(height, width))
    turn = cv2.getRotationMatrix2D(
        (float(xs.mean()) + grow, float(ys.mean()) + grow), float(angles[best]), 1.0
    )
    turn[:, 2] += turn[:, :2] @ np.array([grow, grow], np.float64)  # from the photo, not the grown frame
    size = (width + 2 * grow, height + 2 * grow)
    turned_rgb = cv2.warpAffine(rgb, turn, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    turned_alpha = cv2.warpAffine(alpha, turn, size, flags=cv2.INTER_LINEAR, borderValue=0)
    return turned_rgb, turned_alpha, turn


def _separate_from_background(
    rgb: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The garment's (RGB, alpha), separated at the garment's own scale: once on the photo and, when the
    garment is small in it (:data:`SEPARATION_ZOOM_MIN`), once more on its box, the backdrop round it."""
    garment_rgb, alpha = _separate_once(rgb)
    rows, columns = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    height, width = alpha.shape
    margin = max(
        SEPARATION_MARGIN * max(rows[-1] - rows[0], columns[-1] - columns[0]),
        SEPARATION_MARGIN_PIXELS * max(height, width) / SEPARATION_LONG_SIDE,
    )
    top, bottom = max(0, int(rows[0] - margin)), min(height, int(rows[-1] + margin) + 1)
    left, right = max(0, int(columns[0] - margin)), min(width, int(columns[-1] + margin) + 1)
    if max(height, width) < SEPARATION_ZOOM_MIN * max(bottom - top, right - left):
        return garment_rgb, alpha
    try:
        box_rgb, box_alpha = _separate_once(np.ascontiguousarray(rgb[top:bottom, left:right]))
    except StageInputError:  # the box alone does not separate (a border not plain): the photo's result
        return garment_rgb, alpha
    garment_rgb, alpha = rgb.copy(), np.zeros_like(alpha)
    garment_rgb[top:bottom, left:right], alpha[top:bottom, left:right] = box_rgb, box_alpha
    return garment_rgb, alpha


def _separate_once(
    rgb: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The garment's (RGB, alpha): everything the background, grown in from the photo's border, does not
    reach.

    The background is flooded from every border pixel with a per-step colour tolerance taken from the
    border's own noise (``cv2.floodFill`` in floating-range mode), so gradients, vignetting and a white
    garment on a white studio backdrop are told apart by the garment's edge, not by a fixed distance from
    one background colour. Pixels far from the border colours never flood. Enclosed regions (a white print,
    the inside of a neckline) stay garment. The edge's antialiased pixels get the garment's own colour
    (the backdrop's share taken out), so no backdrop-coloured halo is composited onto the person.
    """
    small = cv2.GaussianBlur(downscale(rgb, SEPARATION_LONG_SIDE), (3, 3), 0)
    small_f = small.astype(np.float32)
    ring = np.concatenate([small_f[:2].reshape(-1, 3), small_f[-2:].reshape(-1, 3),
                           small_f[:, :2].reshape(-1, 3), small_f[:, -2:].reshape(-1, 3)])  # fmt: skip
    background = np.median(ring, axis=0)
    spread = float(np.abs(ring - background).mean())
    if spread > MAX_BORDER_SPREAD:
        raise StageInputError(
            "garment could not be separated from its background: the background is not plain "
            f"(border colour spread {spread:.0f} > {MAX_BORDER_SPREAD:.0f}); use a product photo on a plain "
            "background or an RGBA cut-out",
            field="garment",
        )
    local = _border_surface(small_f, background, spread)
    distance = np.linalg.norm(small_f - local, axis=2)
    # The model's own error just inside the border is the noise the threshold must stay above.
    inner = np.concatenate([distance[2:4].ravel(), distance[-4:-2].ravel(),
                            distance[:, 2:4].ravel(), distance[:, -4:-2].ravel()])  # fmt: skip
    threshold = float(np.clip(BACKGROUND_NOISE_FACTOR * np.median(inner) + 4.0, *BACKGROUND_THRESHOLD_RANGE))
    maybe_background = (distance <= threshold).astype(np.uint8)
    # Background is what is background-coloured AND connected to the photo's border.
    count, labels = cv2.connectedComponents(maybe_background, connectivity=4)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    touching = np.zeros(count, bool)
    touching[edge_labels] = True
    touching[0] = False
    foreground = ~touching[labels]
    foreground = _refine_by_colour(small, foreground, distance, threshold)
    # Small kernels: close pin-holes and drop specks without filling the notch between trouser legs.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    coverage = foreground.mean()
    if coverage < 0.02:
        raise StageInputError(
            "garment could not be separated from its background: nothing stands out from it", field="garment"
        )
    if coverage > 0.92:
        raise StageInputError(
            "garment could not be separated from its background: the garment fills the whole photo",
            field="garment",
        )
    small_mask = _largest_component(foreground, fill_holes=True)
    return _place_edge(rgb, small_f, small_mask, local, threshold)


def _place_edge(
    rgb: npt.NDArray[np.uint8],
    small: npt.NDArray[np.float32],
    small_mask: npt.NDArray[np.uint8],
    local: npt.NDArray[np.float32],
    threshold: float,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The garment's edge at full resolution, from the separation's low-resolution mask: (RGB, alpha).

    The upsampled mask is about one low-resolution pixel off at the edge (downscaling mixed garment and
    backdrop there); left as it is, its opaque rim shows as a staircase of backdrop-coloured steps round the
    composited garment. So in a band about a low-resolution pixel either side of the upsampled edge, each
    pixel is taken as a mix of the garment's colour nearby (the mean colour of the mask's interior around it)
    and the backdrop's (the surface from the border): its alpha is its share of the garment's colour, and
    its colour the garment's, the backdrop's share taken out, so no halo of backdrop colour is composited
    onto the person. Where garment and backdrop are too alike to tell apart (white on white), or the pixel
    is no mix of the two (a print's other colours), alpha ramps with the distance from the backdrop
    instead.
    """
    height, width = rgb.shape[:2]
    region = cv2.resize(small_mask, (width, height), interpolation=cv2.INTER_LINEAR)
    step = max(1, round(max(height, width) / max(small_mask.shape)))
    upsampled = (region >= 255).astype(np.uint8)
    # One low-resolution pixel in from the upsampled edge the mask is usually garment; two, always (the
    # blur before thresholding can grow a straight edge by two). The second ring is placed by colour
    # only where colour can tell garment from backdrop, and stays opaque otherwise.
    surely = cv2.erode(upsampled, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * step + 1,) * 2))
    opaque = cv2.erode(upsampled, cv2.getStructuringElement(cv2.MORPH_RECT, (4 * step + 1,) * 2))
    alpha = opaque * np.uint8(255)
    band = np.nonzero((region > 0) & (opaque == 0))
    if band[0].size == 0:
        return rgb, alpha
    interior = cv2.erode(small_mask, np.ones((3, 3), np.uint8)) > 0
    weight = cv2.GaussianBlur(interior.astype(np.float32), (0, 0), 1.5)
    colour_sum = cv2.GaussianBlur(small * interior[..., None].astype(np.float32), (0, 0), 1.5)
    nearby = np.dstack([colour_sum, weight])
    # Bilinear samples of the low-resolution fields at the band's pixels only (not whole upsampled frames).
    scale_x, scale_y = small_mask.shape[1] / width, small_mask.shape[0] / height
    sampled = _sample(
        np.dstack([nearby, local]), (band[1] + 0.5) * scale_x - 0.5, (band[0] + 0.5) * scale_y - 0.5
    )
    reach, backdrop = sampled[:, 3], sampled[:, 4:7]
    garment_nearby = sampled[:, :3] / np.maximum(reach, 1e-6)[:, None]
    pixel = rgb[band].astype(np.float32)
    contrast = garment_nearby - backdrop
    contrast_sq = (contrast * contrast).sum(axis=1)
    projected = ((pixel - backdrop) * contrast).sum(axis=1) / np.maximum(contrast_sq, 1e-6)
    from_backdrop = np.linalg.norm(pixel - backdrop, axis=1)
    ramp = np.clip((from_backdrop - threshold) / max(EDGE_RAMP_MIN, threshold) + 0.5, 0.0, 1.0)
    # Only a pixel on the line from the backdrop's colour to the garment's is a mix of the two; one off it
    # (a print's other colours, the edge of a pattern) is garment where it is far from the backdrop.
    mixed = np.clip(projected, 0.0, 1.0)
    off_line = np.linalg.norm(pixel - backdrop - mixed[:, None] * contrast, axis=1)
    on_line = off_line <= np.maximum(2.0 * threshold, 0.25 * np.sqrt(contrast_sq))
    distinct = (reach > 0.05) & (contrast_sq > (EDGE_CONTRAST_MIN * threshold) ** 2) & on_line
    coverage = np.where(distinct, mixed, np.where(surely[band] > 0, 1.0, ramp))
    alpha[band] = np.round(255 * coverage)
    # A backdrop-coloured pixel where the garment nearby has backdrop-coloured parts of its own (the white
    # stripes of a striped top on white) cannot be told by colour: read so, the white parts ended short of
    # the others and the edge came out as a saw. There the edge runs on from the garment's parts that can be
    # told, across the gaps between them (up to two low-resolution pixels wide), and the pixel keeps its
    # own colour.
    ambiguous = from_backdrop <= LIGHT_PART_DISTANCE * threshold
    if ambiguous.any():
        ambiguous &= _light_share(rgb, interior, local, threshold, (band[0], band[1])) > LIGHT_PART_SHARE
    if ambiguous.any():
        # Along the edge: a closing with a vertical line bridges a side edge's gaps, a horizontal one a hem's.
        reach_px = 4 * step + 1
        bridged = np.maximum(
            cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, np.ones((reach_px, 1), np.uint8))[band],
            cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, np.ones((1, reach_px), np.uint8))[band],
        )
        raised = ambiguous & (bridged > alpha[band])
        alpha[band[0][raised], band[1][raised]] = bridged[raised]
        coverage = np.where(raised, bridged / 255.0, coverage)
        distinct &= ~raised
    # pixel = coverage * garment + (1 - coverage) * backdrop, solved for the garment's colour where the
    # pixel is mostly garment; fainter pixels (which barely show) take the colour of the garment nearby.
    share = np.maximum(coverage, 1e-6)[:, None]
    solved = (pixel - (1.0 - share) * backdrop) / share
    colour = np.where((coverage >= 0.5)[:, None] | ~distinct[:, None], solved, garment_nearby)
    clean = rgb.copy()
    clean[band] = np.clip(np.round(colour), 0, 255).astype(np.uint8)
    return clean, alpha


def _light_share(
    rgb: npt.NDArray[np.uint8],
    interior: npt.NDArray[np.bool_],
    local: npt.NDArray[np.float32],
    threshold: float,
    points: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
) -> npt.NDArray[np.float32]:
    """At each of ``points`` (rows, columns of ``rgb``), the share of the garment's interior nearby whose
    colour is the backdrop's (``local``, within LIGHT_PART_DISTANCE thresholds): white stripes, a white
    print's ground. Taken at twice the separation's resolution: at its own, thin stripes blur into grey."""
    height, width = rgb.shape[:2]
    size = (2 * interior.shape[1], 2 * interior.shape[0])
    colours = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    backdrop = cv2.resize(local, size, interpolation=cv2.INTER_LINEAR)
    inside = cv2.resize(interior.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    # Away from the edge: the backdrop in a notch's tip (an armpit), which the low-resolution mask fills,
    # is no light part of the garment.
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)).astype(np.float32)
    light = inside * (np.linalg.norm(colours - backdrop, axis=2) <= LIGHT_PART_DISTANCE * threshold)
    sums = cv2.GaussianBlur(np.dstack([light, inside]), (0, 0), 4.0)
    scale_x, scale_y = size[0] / width, size[1] / height
    sampled = _sample(sums, (points[1] + 0.5) * scale_x - 0.5, (points[0] + 0.5) * scale_y - 0.5)
    return sampled[:, 0] / np.maximum(sampled[:, 1], 1e-6)


def _sample(
    field: npt.NDArray[np.float32], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """Bilinear samples of ``field`` (H x W x C) at the points (x, y): an N x C array."""
    count, columns = len(x), 1024  # cv2.remap's maps are limited to 32767 per side: fold the points
    rows = max(1, -(-count // columns))
    map_x, map_y = np.zeros((2, rows * columns), np.float32)
    map_x[:count], map_y[:count] = x, y
    sampled = cv2.remap(field, map_x.reshape(rows, columns), map_y.reshape(rows, columns), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return sampled.reshape(rows * columns, -1)[:count]


def _refine_by_colour(
    small: npt.NDArray[np.uint8],
    foreground: npt.NDArray[np.bool_],
    distance: npt.NDArray[np.float32],
    threshold: float,
) -> npt.NDArray[np.bool_]:
    """The separation re-decided by colour: GrabCut seeded with the border as backdrop, the first guess as
    probable garment / backdrop, and what is far from any backdrop colour as garment.

    An unevenly lit backdrop (a bright patch mid-frame, a second panel) departs from the surface
    interpolated from the border and so passes the first guess as garment; it still has the backdrop's
    colours, which GrabCut's colour models tell apart from the garment's.
    """
    if foreground.mean() < 0.02 or (~foreground).mean() < 0.05:
        return foreground
    # At half the separation's size: GrabCut costs ~1 us per pixel and iteration.
    height, width = foreground.shape
    half = (max(8, width // 2), max(8, height // 2))
    image = cv2.resize(small, half, interpolation=cv2.INTER_AREA)
    first = cv2.resize(foreground.astype(np.uint8), half, interpolation=cv2.INTER_NEAREST).astype(bool)
    sure = cv2.resize(distance, half, interpolation=cv2.INTER_AREA) > max(REFINE_SURE_DISTANCE, threshold)
    seeds = np.where(first, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    seeds[first & sure] = cv2.GC_FGD
    seeds[:1], seeds[-1:], seeds[:, :1], seeds[:, -1:] = (cv2.GC_BGD,) * 4
    cv2.setRNGSeed(REFINE_SEED)  # GrabCut's GMM initialisation draws from OpenCV's global RNG
    background_model, foreground_model = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(image, seeds, None, background_model, foreground_model, REFINE_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)  # fmt: skip
    garment = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    refined = cv2.resize(garment, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    # GrabCut only removes: whole regions of the first guess that have the backdrop's colours. The rim it
    # also takes off every garment (antialiased edge pixels, the half-size grid) is no such region.
    removed = (foreground & ~refined).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (REFINE_MIN_WIDTH, REFINE_MIN_WIDTH))
    removed = cv2.morphologyEx(removed, cv2.MORPH_OPEN, kernel)
    return foreground & ~removed.astype(bool)


def _border_surface(
    small: npt.NDArray[np.float32], background: npt.NDArray[np.float32], spread: float
) -> npt.NDArray[np.float32]:
    """The backdrop's colour everywhere, interpolated from the border (a Coons patch of its four edges).

    Follows gradients and vignetting. Border pixels far from the border's median colour (a garment that
    touches the edge) are replaced by that median first, so they do not bleed into the estimate.
    """
    rows, cols = small.shape[:2]
    limit = 3.0 * spread + 12.0

    def clean(line: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        line = line.mean(axis=0) if line.ndim == 3 else line
        bad = np.linalg.norm(line - background, axis=1) > limit
        return np.where(bad[:, None], background, line)

    top, bottom = clean(small[:2]), clean(small[-2:])  # (cols, 3)
    left, right = clean(small[:, :2].transpose(1, 0, 2)), clean(small[:, -2:].transpose(1, 0, 2))
    u = np.linspace(0.0, 1.0, cols, dtype=np.float32)[None, :, None]
    v = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None, None]
    corners = (
        (1 - u) * (1 - v) * top[0] + u * (1 - v) * top[-1] + (1 - u) * v * bottom[0] + u * v * bottom[-1]
    )
    return (
        (1 - v) * top[None] + v * bottom[None] + (1 - u) * left[:, None] + u * right[:, None] - corners
    ).astype(np.float32)


def _largest_component(
    foreground: npt.NDArray[np.bool_], *, fill_holes: bool, soft: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
    if count <= 1:
        raise StageInputError("garment could not be separated from its background", field="garment")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8) * 255
    if fill_holes:
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        mask = np.zeros_like(mask)
        cv2.drawContours(mask, contours, -1, 255, thickness=cv2.FILLED)
    if soft is not None:  # keep the cut-out's own antialiased edge, but only on the kept component
        grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        return np.where(grown > 0, soft, 0).astype(np.uint8)
    return mask


# ----------------------------------------------------------------------------------------- landmarks


def find_landmarks(alpha: npt.NDArray[np.uint8], category: GarmentCategory) -> dict[str, Point]:
    """Named points of the garment silhouette, in garment-photo pixels.

    Taken from the whole silhouette of an upright product photo: its mirror axis (the median of every
    row's midpoint), the torso's half-width as a low percentile of the symmetric half-widths over many rows
    (a sleeve touching the body widens some rows, not most), shoulders as a mirrored pair at one height,
    the hem on the axis column. Trousers: the waistband, and each leg's centre at the knee and the hem.
    """
    mask = alpha > 127
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) < 8:
        raise StageInputError("garment could not be separated: the silhouette is too small", field="garment")
    top, bottom = int(rows[0]), int(rows[-1])
    garment_height = bottom - top + 1
    axis = _mirror_axis(mask, rows)

    def runs_at(y: float) -> list[npt.NDArray[np.intp]]:
        columns = np.flatnonzero(mask[int(np.clip(round(y), top, bottom))])
        if len(columns) == 0:
            return []
        return np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)

    def half_width_at(y: float) -> float:
        """Half-width of the run on row y that holds the axis, symmetric about it (0 if none does)."""
        for run in runs_at(y):
            if run[0] <= axis <= run[-1]:
                return float(min(axis - run[0], run[-1] - axis))
        return 0.0

    if category is GarmentCategory.LOWER_BODY:
        waist_y = top + 0.03 * garment_height
        waist = [half_width_at(top + f * garment_height) for f in np.linspace(0.01, 0.08, 8)]
        waist_half = float(np.median([w for w in waist if w > 0] or [0.25 * mask.shape[1]]))
        landmarks = {
            "left_waist": (axis - waist_half, waist_y),
            "right_waist": (axis + waist_half, waist_y),
        }
        columns = np.flatnonzero(mask.any(axis=0))
        speck = LEG_SPECK * float(columns[-1] - columns[0] + 1)
        for name, fraction in (("knee", 0.55), ("hem", 0.97)):
            y = top + fraction * garment_height
            # A speck the separation left beside a leg, or a rip's threads, is no leg: the runs narrower
            # than a speck are left out, and the legs are the runs either side of the widest gap between
            # the others (a rip splits a leg into runs too). A speck as the row's last run put a leg's
            # centre on the trousers' edge.
            runs = [run for run in runs_at(y) if len(run) > speck]
            if len(runs) >= 2:  # two legs: each leg's centre
                split = int(np.argmax([after[0] - before[-1] for before, after in itertools.pairwise(runs)]))
                left = (runs[0][0], runs[split][-1])
                right = (runs[split + 1][0], runs[-1][-1])
                landmarks[f"left_{name}"] = ((left[0] + left[1]) / 2, y)
                landmarks[f"right_{name}"] = ((right[0] + right[1]) / 2, y)
            elif runs and name == "hem":  # a skirt: the hem's quarter points
                quarter = (runs[-1][-1] - runs[0][0]) / 4
                landmarks["left_hem"] = (runs[0][0] + quarter, y)
                landmarks["right_hem"] = (runs[-1][-1] - quarter, y)
        if "left_hem" not in landmarks:
            landmarks["left_hem"] = (axis - waist_half, bottom - 0.03 * garment_height)
            landmarks["right_hem"] = (axis + waist_half, bottom - 0.03 * garment_height)
        return landmarks

    # Upper body and dress: the torso's half-width over the rows below the sleeves (the bodice for dresses).
    low, high = (0.45, 0.92) if category is GarmentCategory.UPPER_BODY else (0.25, 0.45)
    widths = [half_width_at(top + f * garment_height) for f in np.linspace(low, high, 24)]
    widths = [w for w in widths if w > 0]
    half_width = float(np.percentile(widths, TORSO_WIDTH_PERCENTILE)) if widths else 0.25 * mask.shape[1]
    # The hem is the torso's lowest row: long sleeves laid flat may hang lower than it.
    centre_rows = np.flatnonzero(mask[:, int(np.clip(round(axis), 0, mask.shape[1] - 1))])
    torso_bottom = int(centre_rows[-1]) if len(centre_rows) else bottom
    if category is GarmentCategory.UPPER_BODY:
        # Long sleeves laid along the body merge with the torso on most rows, so the rows' widths are the
        # torso's plus both sleeves'. Just above the hem the cuffs have ended (or hang apart): a torso
        # clearly narrower there than the rows' median is the torso, the wider rows held sleeves.
        torso_span = torso_bottom - top + 1
        hem_widths = [half_width_at(top + f * torso_span) for f in np.linspace(0.9, 0.97, 8)]
        hem_widths = [w for w in hem_widths if w > 0]
        if hem_widths and float(np.median(hem_widths)) < SLEEVES_MERGED_RATIO * half_width:
            half_width = float(np.median(hem_widths))
    columns_top = np.where(mask.any(axis=0), np.argmax(mask, axis=0), bottom)

    def top_at(x: float) -> float:
        column = int(np.clip(round(x), 0, mask.shape[1] - 1))
        return float(columns_top[column])

    shoulder_dx = SHOULDER_FRACTION * half_width
    # The shoulders' height is the garment's top where it lies on the shoulders: a sleeveless garment's
    # landmark columns may fall in an armhole, whose bottom would be taken for the shoulder and lift the
    # garment by the armhole's depth (a sleeveless dress's neckline on the chin). Its height is then read
    # on the straps, inside the armholes; the landmarks keep their columns, so the width fit is the same.
    reach = _shoulder_reach(columns_top, axis, half_width, shoulder_dx)
    on_shoulder = min(shoulder_dx, reach)
    shoulder_y = (top_at(axis - on_shoulder) + top_at(axis + on_shoulder)) / 2
    hem_y = torso_bottom - 0.02 * (torso_bottom - top + 1)
    hem_half = half_width_at(hem_y) or half_width
    landmarks = {
        "left_shoulder": (axis - shoulder_dx, shoulder_y),
        "right_shoulder": (axis + shoulder_dx, shoulder_y),
        "neckline": (axis, top_at(axis)),
        "left_hem": (axis - hem_half, hem_y),
        "right_hem": (axis + hem_half, hem_y),
    }
    if category is GarmentCategory.UPPER_BODY:
        landmarks.update(_sleeve_tips(mask, axis, max(half_width, hem_half), landmarks, hem_y))
    if np.isfinite(reach) and not any(name.endswith("_sleeve") for name in landmarks):
        strap_dx = _strap_offset(columns_top, axis, half_width, reach)
        strap_y = (top_at(axis - strap_dx) + top_at(axis + strap_dx)) / 2
        landmarks["left_strap"] = (axis - strap_dx, strap_y)
        landmarks["right_strap"] = (axis + strap_dx, strap_y)
    return landmarks


@dataclass(frozen=True)
class Neckline:
    """A front neckline in the garment photo: ``y = top + depth * (1 - ((x - centre) / radius)^2)^power``
    for ``|x - centre| < radius``, between the two neck points (at height ``top``)."""

    centre: float
    radius: float
    top: float
    depth: float
    power: float

    def y(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        t = np.clip((x - self.centre) / self.radius, -1.0, 1.0)
        return self.top + self.depth * (1.0 - t**2) ** self.power


def inner_back(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8], landmarks: dict[str, Point]
) -> Neckline | None:
    """The front neckline of a top or dress photographed from the front, when the photo shows the garment's
    inner back through it (a crew neck's: the back's inside and its brand label); None when it does not
    or when it cannot be told for sure.

    Worn, the inner back is behind the neck, and pasted on the body it put the label on the chest. The
    neck points are the silhouette's highest points either side of its axis, with the shoulders sloping
    down outward from them (a collar; a straight top edge, straps or an off-shoulder cut have none). The
    front neckline is the U curve between them (depth and roundness searched) along which the photo has
    an edge over most of its length (the 30th percentile of the Lab gradient along it), at least
    :data:`NECKLINE_EDGE_RATIO` times the texture of the fabric just below it (so a print's edges below a
    plain neck, or a busy print, are not taken for it) and :data:`NECKLINE_EDGE_MIN` at least.
    """
    mask = alpha > 127
    height, width = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) < 8 or "left_shoulder" not in landmarks or "right_shoulder" not in landmarks:
        return None
    axis = _mirror_axis(mask, rows)
    half = (landmarks["right_shoulder"][0] - landmarks["left_shoulder"][0]) / 2
    if half <= 4:
        return None
    top = np.where(mask.any(axis=0), np.argmax(mask, axis=0), height).astype(np.float64)

    def highest(low: float, high: float, outward: int) -> int | None:
        """The outermost (``outward`` -1: leftmost, 1: rightmost) of the highest columns: the collar's
        corner, where the shoulder starts to fall."""
        columns = np.arange(max(0, int(low)), min(width, int(high)))
        if len(columns) == 0:
            return None
        tops = top[columns]
        highest_columns = columns[tops <= tops.min() + 1]
        return int(highest_columns.max() if outward > 0 else highest_columns.min())

    left = highest(axis - NECK_SEARCH[1] * half, axis - NECK_SEARCH[0] * half, -1)
    right = highest(axis + NECK_SEARCH[0] * half, axis + NECK_SEARCH[1] * half + 1, 1)
    if left is None or right is None:
        return None
    radius, centre = (right - left) / 2, (right + left) / 2
    neck_top = (top[left] + top[right]) / 2
    if radius < NECK_MIN_RADIUS * half:
        return None
    outward = round(0.5 * radius)
    slopes = (top[max(0, left - outward)] - top[left], top[min(width - 1, right + outward)] - top[right])
    if min(slopes) < NECK_SHOULDER_SLOPE * radius:
        return None

    # The gradient only in the neck's box (the whole photo's costs ~20 ms).
    x0, x1 = max(0, int(centre - 1.2 * radius)), min(width, int(centre + 1.2 * radius) + 1)
    y0, y1 = max(0, int(neck_top) - 2), min(height, int(neck_top + 1.8 * radius) + 2)
    lab = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab = cv2.GaussianBlur(lab, (0, 0), max(1.0, radius / 60))
    gradient = np.zeros(lab.shape[:2], np.float32)
    for channel in range(3):
        gradient += cv2.magnitude(
            cv2.Sobel(lab[..., channel], cv2.CV_32F, 1, 0, ksize=3),
            cv2.Sobel(lab[..., channel], cv2.CV_32F, 0, 1, ksize=3),
        )
    box_height = y1 - y0
    t = np.linspace(-0.85, 0.85, 61)
    columns = np.round(centre + t * radius).astype(int)
    depths = np.arange(NECKLINE_DEPTH[0] * radius, NECKLINE_DEPTH[1] * radius, max(1.0, radius / 60))
    best: tuple[float, Neckline] | None = None
    edge_depths, edge_scores = [], []  # every curve inside the garment: its depth and edge strength
    for power in NECKLINE_POWERS:
        # All depths at once: one row of 61 points along the curve per depth.
        ys = neck_top + depths[:, None] * ((1.0 - t**2) ** power)[None, :]
        rows = np.round(ys).astype(int)
        inside = (rows.max(axis=1) < y1) & (ys >= top[columns] + 2).all(axis=1)
        inside[inside] = mask[rows[inside], columns].all(axis=1)
        if not inside.any():
            continue
        ys, rows, candidate_depths = ys[inside], rows[inside], depths[inside]
        scores = np.percentile(gradient[rows - y0, columns - x0], 30, axis=1)
        below = np.concatenate(
            [
                gradient[np.clip(np.round(ys + k * radius).astype(int) - y0, 0, box_height - 1), columns - x0]
                for k in (0.15, 0.25, 0.35, 0.45)
            ],
            axis=1,
        )
        textures = np.median(below, axis=1)
        edge_depths.append(candidate_depths)
        edge_scores.append(scores)
        passing = scores >= np.maximum(NECKLINE_EDGE_MIN, NECKLINE_EDGE_RATIO * textures)
        if passing.any():
            index = int(np.argmax(np.where(passing, scores, -np.inf)))
            if best is None or scores[index] > best[0]:
                best = (
                    float(scores[index]),
                    Neckline(centre, radius, neck_top, float(candidate_depths[index]), power),
                )
    if best is None:
        return None
    # One front neckline: no other curve as strong away from it (a striped top's stripes all are).
    all_depths, all_scores = np.concatenate(edge_depths), np.concatenate(edge_scores)
    rivals = all_scores[np.abs(all_depths - best[1].depth) > NECKLINE_RIVAL_GAP * radius]
    if len(rivals) and best[0] < NECKLINE_UNIQUE * float(rivals.max()):
        return None
    return best[1]


def without_inner_back(alpha: npt.NDArray[np.uint8], neckline: Neckline | None) -> npt.NDArray[np.uint8]:
    """``alpha`` with the inner back (``neckline`` from :func:`inner_back`) transparent: from the
    silhouette's top down to the front neckline, which is antialiased over a pixel."""
    if neckline is None:
        return alpha
    height, width = alpha.shape
    x0 = max(0, int(np.floor(neckline.centre - neckline.radius)))
    x1 = min(width, int(np.ceil(neckline.centre + neckline.radius)) + 1)
    y1 = min(height, int(np.ceil(neckline.top + neckline.depth + NECKLINE_MARGIN * neckline.radius)) + 2)
    rows = np.arange(y1, dtype=np.float64)[:, None]
    # A little below the curve, so no sliver of the inside is left where the photo's neckline is not quite
    # the searched family's curve; 1 below that, 0 above it, a one-pixel ramp across it.
    curve = neckline.y(np.arange(x0, x1, dtype=np.float64))[None, :] + NECKLINE_MARGIN * neckline.radius
    keep = np.clip(rows - curve + 0.5, 0.0, 1.0)
    result = alpha.copy()
    box = result[:y1, x0:x1]
    box[:] = (box * keep).astype(np.uint8)
    return result


def _mirror_axis(mask: npt.NDArray[np.bool_], rows: npt.NDArray[np.intp]) -> float:
    """The x of the silhouette's vertical mirror axis: the median midpoint of its rows' extents."""
    sample = rows[:: max(1, len(rows) // 64)]
    first = np.argmax(mask[sample], axis=1)
    last = mask.shape[1] - 1 - np.argmax(mask[sample, ::-1], axis=1)
    return float(np.median((first + last) / 2))


def _shoulder_reach(
    columns_top: npt.NDArray[np.intp], axis: float, half_width: float, shoulder_dx: float
) -> float:
    """How far from the axis the garment's top still lies on the shoulders: the column just inside the
    nearer armhole (see :data:`ARMHOLE_DROP`), or ``inf`` when neither side has one before ``shoulder_dx``
    (sleeves, or shoulders sloping gently into them)."""
    window = max(2, round(ARMHOLE_WINDOW * half_width))
    offsets = np.arange(round(ARMHOLE_SEARCH_FROM * half_width), round(shoulder_dx) + window + 1)
    reach = np.inf
    for sign in (-1, 1):
        columns = np.clip(np.round(axis + sign * offsets).astype(np.intp), 0, len(columns_top) - 1)
        tops = columns_top[columns].astype(np.float64)
        drop = tops[window:] - tops[:-window]
        steep = np.flatnonzero(drop > ARMHOLE_DROP * half_width)
        if steep.size:
            # The column before the edge's largest single step: the last one on the strap.
            step = int(np.argmax(np.diff(tops[steep[0] : steep[0] + window + 1])))
            reach = min(reach, float(offsets[steep[0] + step]))
    return reach


def _strap_offset(columns_top: npt.NDArray[np.intp], axis: float, half_width: float, reach: float) -> float:
    """How far from the axis a sleeveless garment's straps lie: halfway between the armhole (``reach``,
    :func:`_shoulder_reach`) and the strap's inner edge, the first column out from the axis whose top is
    within :data:`STRAP_TOLERANCE` of the torso's half-width of the highest inside the armhole; averaged
    over both sides. A thin strap standing up is those columns alone; a wide one, sloping down from the
    neck to the armhole, all of its width."""
    offsets = np.arange(round(ARMHOLE_SEARCH_FROM * half_width), round(reach) + 1)
    if len(offsets) == 0:
        return reach
    middles = []
    for sign in (-1, 1):
        columns = np.clip(np.round(axis + sign * offsets).astype(np.intp), 0, len(columns_top) - 1)
        tops = columns_top[columns]
        inner_edge = offsets[np.argmax(tops <= tops.min() + STRAP_TOLERANCE * half_width)]
        middles.append((inner_edge + reach) / 2)
    return float(np.mean(middles))


def _sleeve_tips(
    mask: npt.NDArray[np.bool_], axis: float, half_width: float, landmarks: dict[str, Point], hem_y: float
) -> dict[str, Point]:
    """Each sleeve's tip (the middle of the sleeve's pixels farthest from its shoulder), when the sleeve
    stands out of the torso's band; nothing for sleeveless tops.

    The sleeve is the part of the silhouette beyond the band that is joined to the shoulder: a peplum's
    or a flared hem's sides stand out of the band too, apart from it (their corners, farther from the
    shoulder than the cuff, put a puff sleeve's tip in the air below it).
    """
    tips: dict[str, Point] = {}
    upper = mask[: int(hem_y)]
    columns = np.arange(mask.shape[1])[None, :]
    for side, sign in (("left", -1.0), ("right", 1.0)):
        beyond = (upper & (sign * (columns - axis) > 1.1 * half_width)).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(beyond, connectivity=8)
        large = stats[:, cv2.CC_STAT_AREA] >= SLEEVE_MIN_PIXELS_FRACTION * mask.sum()
        large[0] = False  # the background
        if not large.any():
            continue
        ys, xs = np.nonzero(large[labels])
        shoulder = np.array(landmarks[f"{side}_shoulder"])
        nearest = int(np.argmin(np.hypot(xs - shoulder[0], ys - shoulder[1])))
        joined = labels[ys, xs] == labels[ys[nearest], xs[nearest]]
        points = np.stack([xs[joined], ys[joined]], axis=1).astype(np.float64)
        distance = np.hypot(*(points - shoulder).T)
        end = points[distance >= np.percentile(distance, 90)].mean(axis=0)  # the middle of its end
        tips[f"{side}_sleeve"] = (float(end[0]), float(end[1]))
    return tips


# ----------------------------------------------------------------------------------------- alignment


def _check_keypoints(keypoints: Keypoints) -> None:
    if keypoints.shape != (18, 3) or not np.all(np.isfinite(keypoints)):
        raise StageInputError(
            "keypoints must be 18 finite COCO-18 (x, y, confidence) rows", field="keypoints"
        )


def _point(keypoints: Keypoints, name: str) -> npt.NDArray[np.float64] | None:
    x, y, confidence = keypoints[KP[name]]
    return None if confidence < MIN_CONFIDENCE else np.array([x, y], np.float64)


def _require(keypoints: Keypoints, *names: str) -> list[npt.NDArray[np.float64]]:
    points = [_point(keypoints, name) for name in names]
    missing = [name for name, point in zip(names, points, strict=True) if point is None]
    if missing:
        raise StageInputError(
            f"keypoints: the body's {', '.join(missing)} were not found, so the garment cannot be placed",
            field="keypoints",
        )
    return points  # type: ignore[return-value]


def _spread(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], amount: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Move a and b apart along their line by ``amount`` of their distance (each side)."""
    offset = (b - a) * amount
    return a - offset, b + offset


def _similarity(
    source: tuple[Point, Point],
    target: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """2x3 similarity (rotation, uniform scale, translation) mapping the source pair onto the target pair."""
    (sx0, sy0), (sx1, sy1) = source
    (tx0, ty0), (tx1, ty1) = target
    source_vector = complex(sx1 - sx0, sy1 - sy0)
    target_vector = complex(tx1 - tx0, ty1 - ty0)
    if abs(source_vector) < 1e-6:
        raise StageInputError("garment landmarks are degenerate (zero width)", field="garment")
    rotation_scale = target_vector / source_vector
    translation = complex(tx0, ty0) - rotation_scale * complex(sx0, sy0)
    a, b = rotation_scale.real, rotation_scale.imag
    return np.array([[a, -b, translation.real], [b, a, translation.imag]])


def _apply(matrix: npt.NDArray[np.float64], point: Point) -> npt.NDArray[np.float64]:
    return matrix @ np.array([point[0], point[1], 1.0])


def body_targets(
    landmarks: dict[str, Point],
    keypoints: Keypoints,
    category: GarmentCategory,
    silhouette: npt.NDArray[np.bool_] | None = None,
    neckline: Neckline | None = None,
) -> list[tuple[Point, npt.NDArray[np.float64]]]:
    """(garment point, person point) correspondences for the spline, anchors first.

    Tops: shoulders by a similarity (rotation from the body only: the product photo is upright), the hem
    at the hip width and at the height the top's cut gives it (a regular top on the hip band, a crop top
    higher, a long one lower), each sleeve's tip along its arm (shoulder, elbow, wrist) at the sleeve's
    own length. Dresses: shoulders, the hem at the dress's own length (never below the ankles; a dress
    longer than that is narrowed, see :func:`_dress_narrowing`). Trousers and skirts: the waistband
    above the hips, each leg's centre to its knee and ankle. ``silhouette`` (the garment's mask in its
    photo) keeps a narrowed dress as wide as the hips. A ``neckline`` (a collar's, :func:`inner_back`)
    goes on the neck's base, see :func:`_neck_targets`.
    """
    bends: list[tuple[str, npt.NDArray[np.float64]]] = []
    neck_pairs: list[tuple[Point, npt.NDArray[np.float64]]] = []
    if category is GarmentCategory.LOWER_BODY:
        right_hip, left_hip = _require(keypoints, "right_hip", "left_hip")
        waist_left, waist_right = _spread(right_hip, left_hip, HIP_OUTSET)
        shoulders = [_point(keypoints, "right_shoulder"), _point(keypoints, "left_shoulder")]
        if shoulders[0] is not None and shoulders[1] is not None:
            raise_by = WAIST_RAISE * float(
                np.linalg.norm((right_hip + left_hip) / 2 - (shoulders[0] + shoulders[1]) / 2)
            )
        else:
            raise_by = 0.25 * float(np.linalg.norm(left_hip - right_hip))
        waist_left, waist_right = waist_left - (0, raise_by), waist_right - (0, raise_by)
        anchors = (("left_waist", waist_left), ("right_waist", waist_right))
        for name, joints in (("knee", ("right_knee", "left_knee")), ("hem", ("right_ankle", "left_ankle"))):
            right_joint, left_joint = (_point(keypoints, joint) for joint in joints)
            if right_joint is not None and left_joint is not None and f"left_{name}" in landmarks:
                bends += [(f"left_{name}", right_joint), (f"right_{name}", left_joint)]
        source = (landmarks[anchors[0][0]], landmarks[anchors[1][0]])
        similarity = _similarity(source, (anchors[0][1], anchors[1][1]))
    else:
        right_shoulder, left_shoulder = _require(keypoints, "right_shoulder", "left_shoulder")
        joints_apart = float(np.linalg.norm(left_shoulder - right_shoulder))
        if "left_strap" in landmarks:  # sleeveless: the straps on the middle of the shoulders
            middle = (right_shoulder + left_shoulder) / 2
            half = STRAP_HALF_WIDTH * (left_shoulder - right_shoulder)
            # The shoulders' top rises from their edge to the neck's base: the straps lie on it, higher than
            # a sleeved top's shoulder seams (on the line through the two, 0.165 of the joints' distance).
            edge = 0.5 + SHOULDER_OUTSET
            rise = NECK_RISE + (SHOULDER_LIFT - NECK_RISE) * (STRAP_HALF_WIDTH - NECK_HALF_WIDTH) / (
                edge - NECK_HALF_WIDTH
            )
            lift = rise * joints_apart
            anchors = (("left_strap", middle - half - (0, lift)), ("right_strap", middle + half - (0, lift)))
        else:
            shoulder_left, shoulder_right = _spread(right_shoulder, left_shoulder, SHOULDER_OUTSET)
            lift = SHOULDER_LIFT * joints_apart
            anchors = (
                ("left_shoulder", shoulder_left - (0, lift)),
                ("right_shoulder", shoulder_right - (0, lift)),
            )
        source = (landmarks[anchors[0][0]], landmarks[anchors[1][0]])
        similarity = _similarity(source, (anchors[0][1], anchors[1][1]))
        if neckline is not None:
            neck_pairs = _neck_targets(neckline, right_shoulder, left_shoulder, similarity)
        hips = [_point(keypoints, "right_hip"), _point(keypoints, "left_hip")]
        if hips[0] is not None and hips[1] is not None:
            hip_left, hip_right = _spread(hips[0], hips[1], HIP_OUTSET)
            if category is GarmentCategory.UPPER_BODY:
                hem_y = _top_hem_height(
                    landmarks, anchors, (right_shoulder + left_shoulder) / 2, hips, _scale(similarity)
                )
            else:
                hem_y = float(
                    np.mean([_apply(similarity, landmarks[n])[1] for n in ("left_hem", "right_hem")])
                )
                ankles = [_point(keypoints, "right_ankle"), _point(keypoints, "left_ankle")]
                if ankles[0] is not None and ankles[1] is not None:
                    own_hem_y = hem_y
                    hem_y = min(hem_y, float(max(ankles[0][1], ankles[1][1])))
                    top_y = float((anchors[0][1][1] + anchors[1][1][1]) / 2)
                    narrower = _dress_narrowing(
                        landmarks, top_y, own_hem_y, hem_y, _scale(similarity), (hip_left, hip_right),
                        silhouette,
                    )  # fmt: skip
                    if narrower < 1.0:
                        middle = (anchors[0][1] + anchors[1][1]) / 2
                        (left_name, left_target), (right_name, right_target) = anchors
                        anchors = (
                            (left_name, middle + (left_target - middle) * narrower),
                            (right_name, middle + (right_target - middle) * narrower),
                        )
                        similarity = _similarity(source, (anchors[0][1], anchors[1][1]))
            for name, hip in (("left_hem", hip_left), ("right_hem", hip_right)):
                predicted = _apply(similarity, landmarks[name])
                bends.append((name, np.array([hip[0] if category is GarmentCategory.UPPER_BODY
                                              else predicted[0], hem_y])))  # fmt: skip
        if category is GarmentCategory.UPPER_BODY:
            # Sleeves keep the torso's vertical scale, so they end level with the same part of the body.
            scale = _scale(similarity)
            hem_targets = [target for name, target in bends if name.endswith("_hem")]
            garment_length = (landmarks["left_hem"][1] + landmarks["right_hem"][1]) / 2 - source[0][1]
            if hem_targets and garment_length > 0:
                top_y = (anchors[0][1][1] + anchors[1][1][1]) / 2
                scale = (hem_targets[0][1] - top_y) / garment_length
            for side, joints, shoulder_target in (
                ("left", ("right_elbow", "right_wrist"), anchors[0][1]),
                ("right", ("left_elbow", "left_wrist"), anchors[1][1]),
            ):
                tip = landmarks.get(f"{side}_sleeve")
                elbow, wrist = (_point(keypoints, joint) for joint in joints)
                if tip is None or elbow is None:
                    continue
                length = scale * float(np.hypot(*np.subtract(tip, landmarks[f"{side}_shoulder"])))
                chain = [shoulder_target, elbow] + ([wrist] if wrist is not None else [])
                bends.append((f"{side}_sleeve", _along(chain, length)))
    pairs: list[tuple[Point, npt.NDArray[np.float64]]] = [
        (landmarks[name], target) for name, target in anchors
    ]
    pairs += [(landmarks[name], target) for name, target in bends]
    pairs += neck_pairs
    used = {name for name, _ in (*anchors, *bends)}
    if neck_pairs:  # the "neckline" landmark is the inner back's top, now transparent and behind the neck
        used.add("neckline")
    # Every other landmark follows the similarity: it keeps the spline from folding the garment elsewhere.
    pairs += [(point, _apply(similarity, point)) for name, point in landmarks.items() if name not in used]
    return pairs


def _neck_targets(
    neckline: Neckline,
    right_shoulder: npt.NDArray[np.float64],
    left_shoulder: npt.NDArray[np.float64],
    similarity: npt.NDArray[np.float64],
) -> list[tuple[Point, npt.NDArray[np.float64]]]:
    """(garment point, person point) pairs putting a collar's corners on the neck's base and its front
    neckline as deep below them as the photo's, relative to its width. A collar is never widened (a
    neckline narrower than the neck's base, at the ``similarity``'s scale, keeps its width) nor lowered
    (one the similarity puts higher, its shoulders sloping up to it, stays there: the neck's base is an
    estimate, and lowered the collar bared the shoulders' top)."""
    across = left_shoulder - right_shoulder  # the person's right shoulder is on the photo's left
    width = float(np.linalg.norm(across))
    if width <= 0:
        return []
    along = across / width
    up = np.array([along[1], -along[0]])
    middle = (right_shoulder + left_shoulder) / 2
    corners = [
        (neckline.centre - neckline.radius, neckline.top),
        (neckline.centre + neckline.radius, neckline.top),
    ]
    placed = np.mean([float(np.dot(_apply(similarity, corner) - middle, up)) for corner in corners])
    base = middle + max(NECK_RISE * width, placed) * up
    half = min(NECK_HALF_WIDTH * width, _scale(similarity) * neckline.radius)
    depth = neckline.depth / neckline.radius * half
    return [
        (corners[0], base - half * along),
        (corners[1], base + half * along),
        ((neckline.centre, neckline.top + neckline.depth), base - depth * up),
    ]


def _dress_narrowing(
    landmarks: dict[str, Point],
    top_y: float,
    own_hem_y: float,
    hem_y: float,
    scale: float,
    hips: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    silhouette: npt.NDArray[np.bool_] | None,
) -> float:
    """The factor (<= 1) by which a dress too long for the body is placed narrower than its shoulders
    would make it (1: not narrowed).

    Its width comes from the shoulders and its hem stops at the ankles; a long, slim dress on a short or
    broad person would then be squashed vertically by as much as 0.57, and its print with it (a tartan
    matched 3-11 features, narrowed 66-87, bench/eval_lite.py). Narrowed until the squash is within
    :data:`VERTICAL_SCALE_RANGE`, it fits the body's length at its own proportions, as a shorter dress of
    the same cut would; but never narrower than the body's hips (joints spread by :data:`HIP_OUTSET`) at
    the dress's row that lands on them: the fabric there stretches round the body, whatever the photo.
    """
    squash = (hem_y - top_y) / max(own_hem_y - top_y, 1.0)
    if squash >= VERTICAL_SCALE_RANGE[0]:
        return 1.0
    narrower = squash / VERTICAL_SCALE_RANGE[0]
    if silhouette is not None:
        shoulder_row = (landmarks["left_shoulder"][1] + landmarks["right_shoulder"][1]) / 2
        hem_row = (landmarks["left_hem"][1] + landmarks["right_hem"][1]) / 2
        vertical_scale = (hem_y - top_y) / max(hem_row - shoulder_row, 1.0)
        hip_y = float((hips[0][1] + hips[1][1]) / 2)
        row = int(np.clip(round(shoulder_row + (hip_y - top_y) / vertical_scale), 0, len(silhouette) - 1))
        columns = np.flatnonzero(silhouette[row])
        if len(columns) > 1:
            hip_width = float(np.linalg.norm(hips[1] - hips[0]))
            narrower = max(narrower, hip_width / (scale * float(columns[-1] - columns[0])))
    return min(narrower, 1.0)


def _top_hem_height(
    landmarks: dict[str, Point],
    anchors: tuple[tuple[str, npt.NDArray[np.float64]], ...],
    shoulder_mid: npt.NDArray[np.float64],
    hips: list[npt.NDArray[np.float64] | None],
    scale: float,
) -> float:
    """Where a top's hem lands: on the hip band for a regular length, proportionally higher or lower.

    The vertical scale this gives stays within :data:`VERTICAL_SCALE_RANGE` of the width's ``scale``, so a
    print is never squashed out of recognition.
    """
    garment_width = float(np.hypot(*np.subtract(landmarks["right_shoulder"], landmarks["left_shoulder"])))
    garment_length = (landmarks["left_hem"][1] + landmarks["right_hem"][1]) / 2 - (
        landmarks["left_shoulder"][1] + landmarks["right_shoulder"][1]
    ) / 2
    fit = float(np.clip(garment_length / max(garment_width, 1.0) / TOP_REGULAR_LENGTH, *TOP_LENGTH_RANGE))
    hip_mid = (hips[0] + hips[1]) / 2  # type: ignore[operator]
    band_y = float(hip_mid[1] + HIP_BAND * (hip_mid[1] - shoulder_mid[1]))
    top_y = float((anchors[0][1][1] + anchors[1][1][1]) / 2)
    length = fit * (band_y - top_y)
    low, high = VERTICAL_SCALE_RANGE
    length = float(np.clip(length, low * scale * garment_length, high * scale * garment_length))
    return top_y + length


def _scale(similarity: npt.NDArray[np.float64]) -> float:
    return float(np.hypot(similarity[0, 0], similarity[1, 0]))


def _along(chain: list[npt.NDArray[np.float64]], length: float) -> npt.NDArray[np.float64]:
    """The point ``length`` along the polyline ``chain`` from its start (its end when it is shorter)."""
    for start, end in itertools.pairwise(chain):
        segment = float(np.hypot(*(end - start)))
        if length <= segment and segment > 0:
            return start + (end - start) * (length / segment)
        length -= segment
    return np.asarray(chain[-1], np.float64)


def warp_in_layers(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    landmarks: dict[str, Point],
    pairs: list[tuple[Point, npt.NDArray[np.float64]]],
    target_size: tuple[int, int],
    keypoints: Keypoints | None = None,
) -> npt.NDArray[np.uint8]:
    """The garment in the person frame, its sleeves warped as layers of their own.

    One spline through the torso's and the sleeves' control points shears the torso wherever a sleeve is
    pulled along its arm (arms down: the torso's side under the sleeve is dragged down and in, leaving the
    body's side bare). So each sleeve (the silhouette beyond the torso's side, joined to the sleeve's tip)
    is cut off at the torso's side; the torso is bent by the spline without the sleeve pairs; the sleeves
    are laid over it, rigid, at the torso's scale:

    - a short sleeve (ending above the elbow; ``keypoints`` give the arm) turns about its seam's top, where
      the torso puts it (the shoulder's edge), until its axis (seam's middle -> cuff) runs along the upper
      arm (shoulder -> elbow), never in across the torso's side (an arm held in front of a loose garment
      would lay the sleeve over the print). What the turn swings in over the chest (worn, the part along
      the seam's lower half folds into the armpit) and a wide sleeve's far corner are cut off: the sleeve
      keeps the band its own width spans along the arm, and overlaps the torso's side enough to close the
      seam. Laid flat, short sleeves stick out; without this they stayed out as wings.
    - a long sleeve (or one with no arm found) turns about the seam at the shoulders' height onto its cuff's
      target, fitted along shoulder, elbow and wrist. Where the arm bends at the elbow, the sleeve bends
      with it (:func:`_elbow_bend`): its upper part along shoulder -> elbow, its forearm part along
      elbow -> wrist, blended smoothly over the elbow. Rigid, it cut across the bend, off the arm.

    The sleeve's soft rim goes with it, the sleeves are resampled premultiplied like the torso, and the
    backdrop left in the armpit notches' tips takes the garment's colour: each would otherwise show as a
    light sliver at the seams.
    """
    sleeves = {
        name: target
        for name in ("left_sleeve", "right_sleeve")
        if name in landmarks
        for point, target in pairs
        if point == landmarks[name]
    }
    if not sleeves:
        return warp_to_person(rgb, alpha, pairs, target_size)
    rgb = _edge_colours_from_inside(rgb, alpha)  # only layers have seams inside the garment
    left, right = landmarks["left_shoulder"], landmarks["right_shoulder"]
    axis = (left[0] + right[0]) / 2
    torso_half = abs(right[0] - left[0]) / 2 / SHOULDER_FRACTION
    scale = _scale(_similarity((left, right), (pairs[0][1], pairs[1][1])))  # the anchors come first
    sleeve_points = {landmarks[name] for name in sleeves}
    torso_pairs = [(point, target) for point, target in pairs if point not in sleeve_points]
    torso_placement = ThinPlateSpline(
        np.array([p for p, _ in torso_pairs], np.float64),
        np.array([t for _, t in torso_pairs], np.float64),
        regularization=1e-3,
    )
    columns = np.arange(alpha.shape[1])
    torso_alpha = alpha.copy()
    layers = []
    sleeve_regions: list[tuple[slice, slice]] = []  # where the sleeves' layers lie
    for name, tip_target in sleeves.items():
        sign = -1.0 if name == "left_sleeve" else 1.0
        seam_x = axis + sign * torso_half
        beyond = ((sign * (columns - axis) > torso_half)[None, :] & (alpha > 127)).astype(np.uint8)
        # Opened: a torso a pixel wider than the cut somewhere leaves a thin strip beyond it, which would
        # join the sleeve to the torso's whole side.
        beyond = cv2.morphologyEx(beyond, cv2.MORPH_OPEN, np.ones((SEAM_COLUMNS + 2,) * 2, np.uint8))
        tip = landmarks[name]
        sleeve = _part_holding(beyond, tip)
        if sleeve is None:
            continue
        x0, y0, box_width, box_height = cv2.boundingRect(sleeve.astype(np.uint8))
        box = (slice(y0, y0 + box_height), slice(x0, x0 + box_width))
        # The seam: the sleeve's rows along the cut (its first columns beyond the torso's side).
        inner_x = x0 if sign > 0 else x0 + box_width - 1
        near_cut = sleeve[box][:, np.abs(columns[x0 : x0 + box_width] - inner_x) < SEAM_COLUMNS]
        seam_rows = np.flatnonzero(near_cut.any(axis=1)) + y0
        if len(seam_rows) == 0:
            continue
        seam_middle = np.array([seam_x, (seam_rows[0] + seam_rows[-1]) / 2])
        sleeve_axis = np.subtract(tip, seam_middle)
        axis_length = float(np.hypot(*sleeve_axis))
        if axis_length < 1.0:
            continue
        direction = _upper_arm(name, keypoints, scale * axis_length)
        band_width: float | None = None
        squash = _identity()
        if direction is None:
            # A long sleeve (or no arm to hang on): it turns rigidly about the seam at the shoulders' height
            # onto its cuff's target, fitted along the arm (shoulder, elbow, wrist), at the torso's scale,
            # and narrowed across to its width worn.
            pivot = np.array([seam_x, landmarks[name.replace("sleeve", "shoulder")][1]])
            pivot_target = torso_placement(pivot[None])[0]
            turn = complex(*(tip_target - pivot_target)) / complex(*np.subtract(tip, pivot))
            # ... and is cut out as it always was: everything beyond the torso's side joined to its tip.
            whole = ((sign * (columns - axis) > torso_half)[None, :] & (alpha > 0)).astype(np.uint8)
            # Opened like the seam's part above: a torso's side a pixel beyond the cut would come along as
            # a thin strip, turned off the body with the sleeve.
            whole = cv2.morphologyEx(whole, cv2.MORPH_OPEN, np.ones((SEAM_COLUMNS + 2,) * 2, np.uint8))
            sleeve = _part_holding(whole, tip)
            if sleeve is None:
                continue
            x0, y0, box_width, box_height = cv2.boundingRect(sleeve.astype(np.uint8))
            box = (slice(y0, y0 + box_height), slice(x0, x0 + box_width))
            if _upper_arm(name, keypoints, 0.0) is not None:  # worn on an arm found, longer than it
                toward_tip = np.subtract(tip, pivot) / max(float(np.hypot(*np.subtract(tip, pivot))), 1e-9)
                flat_width = scale * _sleeve_width(sleeve[box], (x0, y0), pivot, toward_tip, own_axis=True)
                worn_min = SLEEVE_WORN_MIN * float(np.hypot(*(pairs[1][1] - pairs[0][1])))
                narrower = min(1.0, max(SLEEVE_WORN_SHARE, worn_min / max(flat_width, 1e-6)))
                squash = _squash_across(pivot, np.subtract(tip, pivot), narrower)
        else:
            # A short sleeve hangs from the shoulder's edge along the upper arm: it turns about its seam's
            # top (where the torso puts it) until its axis (seam's middle -> cuff) runs along the arm. Worn,
            # a sleeve is a tube round the arm: what the turn swings in over the chest (the part along the
            # seam's lower half, folded into the armpit when worn) is cut off beyond the band the sleeve's
            # own width spans along the arm.
            pivot = np.array([seam_x, float(seam_rows[0])])
            seam_ends = torso_placement(np.array([pivot, [seam_x, float(seam_rows[-1])]]))
            pivot_target = seam_ends[0]
            # The torso's side (the seam, placed): a sleeve never hangs in across it, where an arm held in
            # front of a loose garment would lay it over the print; it hangs down the side instead.
            side_down = (seam_ends[1] - seam_ends[0]) / max(
                float(np.hypot(*(seam_ends[1] - seam_ends[0]))), 1e-6
            )
            side_outward = sign * np.array([side_down[1], -side_down[0]])
            if float(direction @ side_outward) < 0:
                direction = side_down
            turn = complex(*direction) / complex(*sleeve_axis)
            along = direction / float(np.hypot(*direction))
            outward = sign * np.array([along[1], -along[0]])
            band_width = min(
                scale * _sleeve_width(sleeve[box], (x0, y0), seam_middle, sleeve_axis / axis_length),
                SLEEVE_BAND_MAX * float(np.hypot(*(pairs[1][1] - pairs[0][1]))),
            )
        if not np.isfinite(abs(turn)) or abs(turn) < 1e-6:
            continue
        matrix = _compose(_rigid(turn, scale, pivot, pivot_target), squash)
        # The sleeve's antialiased rim (alpha <= 127, not in the component) goes with it, or it would stay
        # on the torso's layer as a faint outline of the sleeve laid flat.
        pad = RIM_PIXELS if band_width is not None else 0
        rim_box = (
            slice(max(y0 - pad, 0), y0 + box_height + pad),
            slice(max(x0 - pad, 0), x0 + box_width + pad),
        )
        rim = cv2.dilate(sleeve[rim_box].astype(np.uint8), np.ones((2 * pad + 1,) * 2, np.uint8)).astype(bool)
        torso_alpha[rim_box][rim & (sign * (columns[rim_box[1]] - axis) > torso_half)[None, :]] = 0
        if band_width is None:
            bend = _elbow_bend(name, keypoints, sleeve, tip, pivot, pivot_target, scale, squash)
            if bend is not None:
                garment_points = _sleeve_grid(sleeve, pivot, tip)
                sleeve_alpha = np.where(sleeve, alpha, 0).astype(np.uint8)
                part = _warp_part(rgb, sleeve_alpha, garment_points, bend(garment_points), target_size)
                if part is not None:
                    layers.append(part)
                    sleeve_regions.append(part[0])
                continue
        # Only the sleeve's box is cut out and warped, into only the box it lands in (full frames cost
        # ~40 ms per sleeve in copies and blends).
        layer = premultiply(
            np.ascontiguousarray(rgb[box]), np.where(sleeve[box], alpha[box], 0).astype(np.uint8)
        )
        corners = np.array([[0, 0], [box_width, 0], [0, box_height], [box_width, box_height]], np.float64)
        corners = (corners + np.array([x0, y0])) @ matrix[:, :2].T + matrix[:, 2]
        left_x, top_y = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
        right_x = min(int(np.ceil(corners[:, 0].max())) + 2, target_size[1])
        bottom_y = min(int(np.ceil(corners[:, 1].max())) + 2, target_size[0])
        if right_x <= left_x or bottom_y <= top_y:
            continue
        local = matrix.copy()
        local[:, 2] = matrix[:, :2] @ (x0, y0) + matrix[:, 2] - (left_x, top_y)
        placed = cv2.warpAffine(
            layer,
            local,
            (right_x - left_x, bottom_y - top_y),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0, 0),
        )
        placed = unpremultiply(placed)
        # Keep the band over the arm: beyond its inner edge is the sleeve's underside, folded away; beyond
        # its outer edge (the arm's line through the shoulder's edge, plus a little flare) a wide sleeve's
        # far corner would stick out into the air.
        if band_width is not None:
            xs = np.arange(left_x, right_x, dtype=np.float32)[None, :] - np.float32(pivot_target[0])
            ys = np.arange(top_y, bottom_y, dtype=np.float32)[:, None] - np.float32(pivot_target[1])
            out = xs * np.float32(outward[0]) + ys * np.float32(outward[1])
            keep = np.minimum(out + np.float32(band_width), np.float32(SLEEVE_FLARE * band_width) - out)
            # ... and covers the torso's side by at most SEAM_OVERLAP of its width, enough to close the seam.
            beside = xs * np.float32(side_outward[0]) + ys * np.float32(side_outward[1])
            keep = np.minimum(keep, beside + np.float32(SEAM_OVERLAP * band_width)) + np.float32(0.5)
            np.clip(keep, 0.0, 1.0, out=keep)
            placed[..., 3] = cv2.multiply(placed[..., 3], keep, dtype=cv2.CV_8U)
        # Blended over only what is left of it (the turn's box is mostly empty once the band is cut).
        kept_x, kept_y, kept_width, kept_height = cv2.boundingRect(cv2.extractChannel(placed, 3))
        if kept_width == 0 or kept_height == 0:
            continue
        placed = placed[kept_y : kept_y + kept_height, kept_x : kept_x + kept_width]
        top_y, left_x = top_y + kept_y, left_x + kept_x
        region = (slice(top_y, top_y + kept_height), slice(left_x, left_x + kept_width))
        layers.append((region, placed))
        sleeve_regions.append(region)
    if not layers:
        return warp_to_person(rgb, alpha, pairs, target_size)
    warped = warp_to_person(rgb, torso_alpha, torso_pairs, target_size)
    torso = warped[..., 3] > 127
    for region, placed in layers:  # "over": the sleeves lie on the torso's sides (arms down)
        top = placed.astype(np.float32)
        under = warped[region].astype(np.float32)
        top_alpha = top[..., 3:4] / 255.0
        under_alpha = under[..., 3:4] / 255.0 * (1.0 - top_alpha)
        out_alpha = top_alpha + under_alpha
        mixed = (top[..., :3] * top_alpha + under[..., :3] * under_alpha) / np.maximum(out_alpha, 1e-6)
        blended = np.round(np.concatenate([mixed, out_alpha * 255.0], axis=2)).astype(np.uint8)
        warped[region] = cv2.bitwise_and(blended, blended, mask=cv2.extractChannel(blended, 3))
    if sleeve_regions:
        shoulders_width = float(np.hypot(*(pairs[1][1] - pairs[0][1])))
        _close_seams(warped, torso, sleeve_regions, max(3, round(SEAM_CLOSE * shoulders_width)))
    return warped


def _close_seams(
    warped: npt.NDArray[np.uint8],
    torso: npt.NDArray[np.bool_],
    sleeves: list[tuple[slice, slice]],
    width: int,
) -> None:
    """Fill (in place) the slits narrower than ``width`` between the torso and each sleeve with the
    garment's colour from either side.

    A long sleeve laid flat often hangs beside the torso with a gap of backdrop below the armpit, and the
    torso's side there is not the straight cut the sleeves are taken off at: turned onto an arm held away
    from the body, that gap opens into a wedge under the arm, where the worn garment's fabric would be. A
    short sleeve turned down the arm meets the torso's top edge at an angle: the V between them was a notch
    in the shoulder's outline (a light tick at every T-shirt's shoulder).
    Only what a closing of the silhouette adds next to both the torso and the sleeve is filled, so the wider
    space between an arm and the body (the photo shows through there) stays open.
    """
    radius = width / 2.0
    for region in sleeves:
        rows, columns = region
        # The sleeve's box, grown by the slit's width (the torso's side lies beside it).
        box = (
            slice(max(rows.start - width, 0), rows.stop + width),
            slice(max(columns.start - width, 0), columns.stop + width),
        )
        opaque = warped[box][..., 3] > 127
        sleeve = np.zeros_like(opaque)
        sleeve[rows.start - box[0].start : rows.stop - box[0].start,
               columns.start - box[1].start : columns.stop - box[1].start] = True  # fmt: skip
        sleeve &= opaque & ~torso[box]
        # Distances, not dilations with discs this wide (a tenth of the cost): a closing by a disc of
        # ``radius`` is what lies farther than ``radius`` from all that is beyond ``radius`` of the garment.
        grown = _distance_to(opaque) <= radius
        closed = _distance_to(~grown) > radius
        # Next to both: within the slit's width of each (a slit's pixel is that close to both its sides).
        slit = (
            closed & ~opaque & (_distance_to(torso[box] & opaque) <= width) & (_distance_to(sleeve) <= width)
        )
        if not slit.any():
            continue
        # Colours from the opaque garment only (everything transparent is to be filled), in the slit's own
        # box with a margin: Telea's cost grows with the pixels it fills.
        x, y, slit_width, slit_height = cv2.boundingRect(slit.astype(np.uint8))
        margin = 8
        inner = (
            slice(max(y - margin, 0), y + slit_height + margin),
            slice(max(x - margin, 0), x + slit_width + margin),
        )
        patch = warped[box][inner]
        slit, opaque = slit[inner], opaque[inner]
        colours = cv2.inpaint(
            np.ascontiguousarray(patch[..., :3]), (~opaque).astype(np.uint8), 3, cv2.INPAINT_TELEA
        )
        # The slit is the torso's side, under the arm: its fabric continues there, mirrored along each row
        # (a stripe carries on; Telea's blend of the two sides was a grey smear across striped tops).
        # Telea fills what no row reaches.
        mirrored, found = _mirrored_along_rows(patch[..., :3], torso[box][inner] & (patch[..., 3] == 255))
        colours[found] = mirrored[found]
        patch[slit, :3] = colours[slit]
        patch[slit, 3] = 255
        # The layers' antialiased edges along the slit become opaque over the fill, or they would show a
        # faint line of whatever lies behind.
        rim = cv2.dilate(slit.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~slit & opaque
        rim &= patch[..., 3] < 255
        share = patch[rim, 3:4].astype(np.float32) / 255.0
        patch[rim, :3] = np.round(patch[rim, :3] * share + colours[rim] * (1.0 - share)).astype(np.uint8)
        patch[rim, 3] = 255


def _mirrored_along_rows(
    rgb: npt.NDArray[np.uint8], source: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Each pixel's colour mirrored about the nearest ``source`` pixel in its row (the source pixel as far
    inside that edge as the pixel is outside it; the edge's own where the source is narrower), and
    whether its row had a source pixel."""
    height, width = source.shape
    columns = np.broadcast_to(np.arange(width)[None, :], (height, width))
    before = np.maximum.accumulate(np.where(source, columns, -1), axis=1)
    after = np.minimum.accumulate(np.where(source, columns, width)[:, ::-1], axis=1)[:, ::-1]
    gap_before = np.where(before >= 0, columns - before, width + 1)
    gap_after = np.where(after < width, after - columns, width + 1)
    edge = np.where(gap_before <= gap_after, before, after)
    found = np.minimum(gap_before, gap_after) <= width
    edge = np.clip(edge, 0, width - 1)
    mirror = 2 * edge - columns + np.sign(columns - edge)  # the first pixel past the edge takes the edge's
    inside = (mirror >= 0) & (mirror < width)
    mirror = np.clip(mirror, 0, width - 1)
    rows = np.broadcast_to(np.arange(height)[:, None], (height, width))
    column = np.where(inside & source[rows, mirror], mirror, edge)
    return rgb[rows, column], found


def _distance_to(region: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Each pixel's Euclidean distance (px) to the nearest pixel of ``region`` (0 inside it)."""
    if not region.any():
        return np.full(region.shape, np.inf, np.float32)
    return cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


@dataclass(frozen=True)
class _Affine:
    """Points -> points through a 2 x 3 matrix."""

    matrix: npt.NDArray[np.float64]

    def __call__(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]


@dataclass(frozen=True)
class _ElbowBend:
    """Points of a sleeve -> the person frame, bent at the elbow: the upper arm's rigid placement before
    the elbow (``split`` garment pixels from ``pivot`` along the sleeve's axis ``along``), the forearm's
    after it, blended over one sleeve's ``width`` centred on the elbow (a bent sleeve is compressed inside
    the bend and stretched outside it, with no seam or gap)."""

    upper: _Affine
    lower: _Affine
    pivot: npt.NDArray[np.float64]
    along: npt.NDArray[np.float64]
    split: float
    width: float

    def __call__(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        distance = (points - self.pivot) @ self.along
        share = _smoothstep((distance - (self.split - self.width / 2)) / max(self.width, 1.0))[:, None]
        return (1.0 - share) * self.upper(points) + share * self.lower(points)


def _smoothstep(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """0 below 0, 1 above 1, and an S between with no kink at either end."""
    clipped = np.clip(values, 0.0, 1.0)
    return clipped * clipped * (3.0 - 2.0 * clipped)


def _elbow_bend(
    name: str,
    keypoints: Keypoints | None,
    sleeve: npt.NDArray[np.bool_],
    tip: Point,
    pivot: npt.NDArray[np.float64],
    pivot_target: npt.NDArray[np.float64],
    scale: float,
    squash: npt.NDArray[np.float64] | None = None,
) -> _ElbowBend | None:
    """Where the points of a long sleeve go on an arm bent at the elbow, or None where the arm is nearly
    straight (one rigid turn is as good), the sleeve ends near the elbow, or the elbow or wrist was not
    found.

    Two rigid placements at the torso's ``scale``, both taking the elbow's point on the sleeve (its
    distance from the seam's top ``pivot`` along the sleeve's axis is the upper arm's length) to the elbow:
    the upper arm's turns about ``pivot`` (placed at ``pivot_target``) onto shoulder -> elbow, the
    forearm's about the elbow onto elbow -> wrist. ``squash`` (garment -> garment, keeping the sleeve's
    axis) narrows the sleeve first.
    """
    if keypoints is None:
        return None
    side = "right" if name == "left_sleeve" else "left"  # image-left sleeve: the wearer's right arm
    shoulder, elbow, wrist = (
        _point(keypoints, f"{side}_{joint}") for joint in ("shoulder", "elbow", "wrist")
    )
    if shoulder is None or elbow is None or wrist is None:
        return None
    upper_arm, forearm = elbow - pivot_target, wrist - elbow
    sleeve_axis = np.subtract(tip, pivot)
    sleeve_length = float(np.hypot(*sleeve_axis))
    if min(float(np.hypot(*(elbow - shoulder))), float(np.hypot(*forearm)), sleeve_length) < 1.0:
        return None
    bend = abs(np.angle(complex(*forearm) / complex(*(elbow - shoulder)), deg=True))
    split = float(np.hypot(*upper_arm)) / scale  # the elbow on the sleeve laid flat (garment pixels)
    if bend < ELBOW_BEND_MIN or split > ELBOW_SPLIT_MAX * sleeve_length:
        return None
    along = sleeve_axis / sleeve_length
    rows, columns = np.nonzero(sleeve)
    offsets = np.stack([columns, rows], axis=1) - pivot
    distance, across = offsets @ along, offsets @ np.array([-along[1], along[0]])
    at_elbow = np.abs(distance - split) < 2.0
    width = float(np.ptp(across[at_elbow])) if at_elbow.any() else float(np.ptp(across))
    squash = _identity() if squash is None else squash
    upper = _Affine(
        _compose(_rigid(complex(*upper_arm) / complex(*along), scale, pivot, pivot_target), squash)
    )
    lower = _Affine(
        _compose(_rigid(complex(*forearm) / complex(*along), scale, pivot + split * along, elbow), squash)
    )
    return _ElbowBend(upper, lower, pivot, along, split, width)


def _sleeve_grid(
    sleeve: npt.NDArray[np.bool_], pivot: npt.NDArray[np.float64], tip: Point
) -> npt.NDArray[np.float64]:
    """Sample points (garment pixels) over a sleeve's extent along and across its axis (``pivot`` ->
    ``tip``), a little beyond its edges: the control points of the spline that places it."""
    along = np.subtract(tip, pivot) / max(float(np.hypot(*np.subtract(tip, pivot))), 1e-6)
    across_axis = np.array([-along[1], along[0]])
    rows, columns = np.nonzero(sleeve)
    offsets = np.stack([columns, rows], axis=1) - pivot
    distance, across = offsets @ along, offsets @ across_axis
    step = max(float(np.ptp(across)) / SLEEVE_GRID_ACROSS, 2.0)
    margin = 2 * step
    grid_along = np.arange(distance.min() - margin, distance.max() + margin + step, step)
    grid_across = np.arange(across.min() - margin, across.max() + margin + step, step)
    mesh_along, mesh_across = (mesh.ravel() for mesh in np.meshgrid(grid_along, grid_across))
    return pivot + mesh_along[:, None] * along + mesh_across[:, None] * across_axis


def _rigid(
    turn: complex, scale: float, source: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The 2 x 3 matrix that turns by ``turn``'s angle, scales by ``scale`` and takes ``source`` to
    ``target``."""
    rotation = turn / abs(turn) * scale
    matrix = np.array([[rotation.real, -rotation.imag, 0.0], [rotation.imag, rotation.real, 0.0]])
    matrix[:, 2] = target - matrix[:, :2] @ source
    return matrix


def _identity() -> npt.NDArray[np.float64]:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _squash_across(
    origin: npt.NDArray[np.float64], axis: npt.NDArray[np.float64], factor: float
) -> npt.NDArray[np.float64]:
    """The 2 x 3 matrix that scales distances across the line through ``origin`` along ``axis`` by
    ``factor``, keeping the line (and distances along it)."""
    across = np.array([-axis[1], axis[0]]) / max(float(np.hypot(*axis)), 1e-9)
    linear = np.eye(2) - (1.0 - factor) * np.outer(across, across)
    return np.hstack([linear, (origin - linear @ origin)[:, None]])


def _compose(outer: npt.NDArray[np.float64], inner: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The 2 x 3 matrix of ``outer`` after ``inner``."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def _warp_part(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    garment_points: npt.NDArray[np.float64],
    person_points: npt.NDArray[np.float64],
    target_size: tuple[int, int],
) -> tuple[tuple[slice, slice], npt.NDArray[np.uint8]] | None:
    """The part of the garment ``alpha`` holds, remapped through the spline person -> garment fitted on the
    point pairs, into only the box of the person frame it lands in: (that box, its RGBA), or None where it
    lands outside the frame."""
    height, width = target_size
    left, top = np.maximum(np.floor(person_points.min(axis=0)).astype(int), 0)
    right = min(int(np.ceil(person_points[:, 0].max())) + 1, width)
    bottom = min(int(np.ceil(person_points[:, 1].max())) + 1, height)
    if right <= left or bottom <= top:
        return None
    # Read from the part's own box of the garment only.
    x0, y0, box_width, box_height = cv2.boundingRect(alpha)
    source = (slice(y0, y0 + box_height), slice(x0, x0 + box_width))
    placed = _spline_remap(
        rgb, alpha, garment_points, person_points, (slice(top, bottom), slice(left, right)), source
    )
    kept_x, kept_y, kept_width, kept_height = cv2.boundingRect(cv2.extractChannel(placed, 3))
    if kept_width == 0 or kept_height == 0:
        return None
    placed = placed[kept_y : kept_y + kept_height, kept_x : kept_x + kept_width]
    top, left = top + kept_y, left + kept_x
    return (slice(top, top + kept_height), slice(left, left + kept_width)), placed


def _upper_arm(name: str, keypoints: Keypoints | None, length: float) -> npt.NDArray[np.float64] | None:
    """The upper arm's direction (shoulder -> elbow) for a sleeve of ``length`` (person pixels) that ends
    above the elbow; None for a longer sleeve or an arm not found."""
    if keypoints is None:
        return None
    side = "right" if name == "left_sleeve" else "left"  # image-left sleeve: the wearer's right arm
    shoulder, elbow = _point(keypoints, f"{side}_shoulder"), _point(keypoints, f"{side}_elbow")
    if shoulder is None or elbow is None:
        return None
    upper_arm = elbow - shoulder
    reach = float(np.hypot(*upper_arm))
    return upper_arm if reach >= 1.0 and length <= reach else None


def _sleeve_width(
    sleeve: npt.NDArray[np.bool_],
    origin: tuple[int, int],
    start: npt.NDArray[np.float64],
    along: npt.NDArray[np.float64],
    *,
    own_axis: bool = False,
) -> float:
    """The sleeve's width over its outer half (garment-photo pixels, by ``along`` from ``start``): what it
    spans around the arm, seen from the front. Across ``along``, or (``own_axis``) across the outer half's
    own direction, its principal axis: a long sleeve hanging at an angle to the line from the seam's
    corner to the cuff crosses that line obliquely."""
    points = cv2.findNonZero(sleeve.astype(np.uint8))[::4, 0]  # every 4th pixel: the extent is all it needs
    offsets = (points + origin).astype(np.float64) - start
    distance_along = offsets @ along
    outer = offsets[distance_along >= 0.5 * distance_along.max()]
    if own_axis and len(outer) >= 3:
        centred = outer - outer.mean(axis=0)
        across = centred @ np.linalg.eigh(centred.T @ centred)[1][:, 0]  # the smaller eigenvalue's axis
    else:
        across = outer @ np.array([-along[1], along[0]])
    low, high = np.percentile(across, (2, 98))
    return float(high - low)


def _edge_colours_from_inside(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """``rgb`` with the colour of the garment's backdrop-coloured pixels joined to the outside through
    such pixels (at most NOTCH_PIXELS deep) replaced by the mean colour of the opaque garment near them.

    The separation decides at low resolution and places the edge again only about a low-resolution pixel
    deep: the tips of narrow notches (the armpits of a T-shirt laid flat) stay opaque with the backdrop's
    colour. Cut into layers, they show as light slivers at the seams between the torso and the sleeves.
    """
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    backdrop = np.median(border, axis=0)
    garment = alpha > 0
    if not garment.any():
        return rgb
    x0, y0, box_width, box_height = cv2.boundingRect(garment.astype(np.uint8))
    pad = EDGE_FILL_KERNEL
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    box = (slice(y0, y0 + box_height + 2 * pad), slice(x0, x0 + box_width + 2 * pad))
    # The masks and means are taken at half resolution (a fringe's colour needs no more; a quarter of the
    # cost), the fringe itself is recoloured at full resolution.
    size = (box[1].stop - box[1].start, box[0].stop - box[0].start)
    size = (min(size[0], rgb.shape[1] - x0), min(size[1], rgb.shape[0] - y0))
    half = ((size[0] + 1) // 2, (size[1] + 1) // 2)
    small_rgb = cv2.resize(rgb[box], half, interpolation=cv2.INTER_AREA)
    small_alpha = cv2.resize(alpha[box], half, interpolation=cv2.INTER_AREA)
    inside = cv2.compare(small_alpha, 0, cv2.CMP_GT)
    inner = cv2.erode(inside, np.ones((NOTCH_PIXELS + 1,) * 2, np.uint8))
    low = np.clip(backdrop - BACKDROP_RIM_DISTANCE, 0, 255)
    high = np.clip(backdrop + BACKDROP_RIM_DISTANCE, 0, 255)
    looks_backdrop = cv2.bitwise_and(cv2.inRange(small_rgb, low, high), cv2.subtract(inside, inner))
    # Backdrop-coloured pixels joined to the outside (through the box's border) through such pixels: the
    # rim and the notches' tips, not a light print inside the garment.
    canvas = cv2.copyMakeBorder(
        cv2.bitwise_or(looks_backdrop, 255 - inside), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255
    )
    cv2.floodFill(canvas, None, (0, 0), 128, flags=4)
    rim_backdrop = cv2.bitwise_and(looks_backdrop, cv2.compare(canvas[1:-1, 1:-1], 128, cv2.CMP_EQ))
    # (grown by a pixel: at half resolution the rim's inner pixels mix in the garment's colour)
    rim_backdrop = cv2.dilate(rim_backdrop, np.ones((3, 3), np.uint8))
    solid = cv2.bitwise_and(cv2.compare(small_alpha, OPAQUE, cv2.CMP_GE), 255 - rim_backdrop)
    kernel = (EDGE_FILL_KERNEL // 2 | 1,) * 2
    sums = cv2.blur(cv2.bitwise_and(small_rgb, small_rgb, mask=solid).astype(np.float32), kernel)
    weights = cv2.blur(solid.astype(np.float32), kernel)
    # (OpenCV's division gives 0 where no garment is near: colour no sample ever reaches)
    means = cv2.divide(sums, cv2.merge([weights] * 3), scale=255.0, dtype=cv2.CV_8U)
    means = cv2.resize(means, size, interpolation=cv2.INTER_LINEAR)
    # (recolouring a garment pixel next to them with its neighbours' mean is harmless)
    fringe = cv2.resize(rim_backdrop, size, interpolation=cv2.INTER_NEAREST)
    region = np.ascontiguousarray(rgb[box])
    cv2.copyTo(means, fringe, region)
    filled = rgb.copy()
    filled[box] = region
    return filled


def _part_holding(
    region: npt.NDArray[np.bool_] | npt.NDArray[np.uint8], point: Point
) -> npt.NDArray[np.bool_] | None:
    """The 8-connected part of ``region`` that holds ``point`` (None where the point lies outside it)."""
    _, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    row = int(np.clip(round(point[1]), 0, region.shape[0] - 1))
    column = int(np.clip(round(point[0]), 0, region.shape[1] - 1))
    label = labels[row, column]
    return None if label == 0 else labels == label


def warp_to_person(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    pairs: list[tuple[Point, npt.NDArray[np.float64]]],
    target_size: tuple[int, int],
) -> npt.NDArray[np.uint8]:
    """Remap the garment into the person frame through the inverse spline (person -> garment)."""
    height, width = target_size
    garment_points = np.array([p for p, _ in pairs], np.float64)
    person_points = np.array([t for _, t in pairs], np.float64)
    everything = (slice(0, alpha.shape[0]), slice(0, alpha.shape[1]))
    return _spline_remap(
        rgb, alpha, garment_points, person_points, (slice(0, height), slice(0, width)), everything
    )


def _spline_remap(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    garment_points: npt.NDArray[np.float64],
    person_points: npt.NDArray[np.float64],
    target: tuple[slice, slice],
    source: tuple[slice, slice],
) -> npt.NDArray[np.uint8]:
    """The ``target`` box of the person frame (RGBA), each pixel read from the garment's ``source`` box
    where the spline person -> garment fitted on the point pairs takes it (evaluated on a coarse grid,
    resampled premultiplied)."""
    (top, bottom), (left, right) = (target[0].start, target[0].stop), (target[1].start, target[1].stop)
    inverse = ThinPlateSpline(person_points, garment_points, regularization=1e-3)
    grid_x = np.linspace(left, right - 1, (right - 1 - left) // MAP_GRID_STEP + 2)
    grid_y = np.linspace(top, bottom - 1, (bottom - 1 - top) // MAP_GRID_STEP + 2)
    mesh = np.stack(np.meshgrid(grid_x, grid_y), axis=-1).reshape(-1, 2)
    coarse = inverse(mesh).reshape(len(grid_y), len(grid_x), 2).astype(np.float32)
    maps = cv2.resize(coarse, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    layer = premultiply(np.ascontiguousarray(rgb[source]), np.ascontiguousarray(alpha[source]))
    return unpremultiply(
        cv2.remap(
            layer, maps[..., 0] - np.float32(source[1].start), maps[..., 1] - np.float32(source[0].start),
            interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0),
        )
    )  # fmt: skip


def premultiply(rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """RGBA with its colour multiplied by its alpha, for resampling: interpolated unpremultiplied, a pixel
    at the garment's edge takes the colour of the transparent photo background next to it (a light halo
    round a garment shot on white)."""
    alpha3 = cv2.merge([alpha, alpha, alpha])
    return cv2.merge([*cv2.split(cv2.multiply(rgb, alpha3, scale=1 / 255)), alpha])


def unpremultiply(rgba: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Back to straight colour; fully transparent pixels are transparent black (the wire sends only the
    garment's bounding box)."""
    alpha = cv2.extractChannel(rgba, 3)
    colour = cv2.divide(cv2.merge(cv2.split(rgba)[:3]), cv2.merge([alpha, alpha, alpha]), scale=255)
    return cv2.merge([*cv2.split(colour), alpha])
