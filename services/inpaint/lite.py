"""Lite inpainting: the warped garment composited into the clothing mask, shaded like the photo.

Weight-free and deterministic (classic CV only; no torch). Inside the clothing mask:

1. **Fill.** Where the new garment does not reach the worn garment it replaces (a narrower cut, a shorter
   hem, shorter sleeves), a fill by kind of surface (:func:`fill_by_kind`, driven by the clothing mask's
   values, see :mod:`tryon.vision.mask_kinds`): skin in the person's own skin colour (their face, neck and
   hands) toned like the bare skin beside it, background from the nearest background, the garment below
   continued upwards; never a mix of kinds, never the old garment's colours. Where the mask only allows
   the new garment (the body around the old one) the photo stays.
2. **Shading.** The photo's luminance detail, ``shading = L / base(L)``, carries the folds and shadows of
   the worn garment onto the new one. ``base`` is an edge-aware smoothing over the mask only (a guided
   filter of log-luminance, after a median filter that drops thin prints and seams), so the old garment's
   hard edges (a patch, a dark panel, its silhouette) stay out of the shading and its soft variation goes
   in. Where the worn garment is patterned (a check, a print, lettering) its pattern and its folds cannot
   be told apart, and the shading fades out (no blotches of the old print on the new garment). Shading is
   clipped to a sane range and normalised to mean 1 over the garment, so a single-colour garment keeps
   its mean colour.
3. **Composite.** ``garment * shading`` over the fill with the garment's alpha, the mask edge antialiased.

Pixels outside the clothing mask are returned bit-exact. Only the mask's bounding box (plus a margin) is
processed, which keeps a 1024 px photo well within the lite budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from tryon.progress import report_progress
from tryon.types import (
    BackendInfo,
    InpaintInput,
    InpaintOutput,
    RGBImage,
)
from tryon.vision import mask_kinds
from tryon.vision.images import shrink_factor, shrunk_size

FloatImage = npt.NDArray[np.float32]

#: The fill is grown at this long side (of the mask's bounding box): it only has to continue the colours
#: around the mask, and Telea's cost grows with the number of masked pixels.
FILL_LONG_SIDE = 256
#: Fewer skin-coloured pixels than this (at the fill resolution) are no skin to copy.
SKIN_MIN_SOURCES = 12
#: Sigma (px at the fill resolution) of the blur that hides seams between the fill's sources.
FILL_BLUR = 1.5
#: Filled skin is the person's skin colour (:data:`tryon.vision.mask_kinds.SKIN_SOURCE`: face, neck,
#: hands), adjusted to the skin beside it: the skin pixels around the mask, averaged over a window this
#: wide (sigma, as a fraction of the fill's long side), give its local tone...
SKIN_LOCAL_SIGMA = 0.04
#: ... weighed against the person's skin colour as if this share of the window were skin of that colour
#: (far from any bare skin the fill is the person's skin colour).
SKIN_PRIOR_WEIGHT = 0.05
#: Next to bare skin the fill continues it: the skin within this window (sigma, fraction of the fill's
#: long side) gives the tone where it fills at least this share of the window, fading to the wide
#: window's tone away from it, so painted skin meets kept skin without a step.
SKIN_NEAR_SIGMA = 0.016
SKIN_NEAR_DENSITY = 0.15
#: The local tone stays within this range of the person's skin colour (per channel): a shadow under the
#: chin or a lit shoulder beside the mask tints the fill, it does not become it.
SKIN_LOCAL_RANGE = (0.7, 1.2)
#: Bare skin inside the replaced region (a neckline) of at least this share of the skin to paint sets the
#: painted skin's tone far from other skin (:func:`_skin_fill`).
SKIN_BARE_MIN_SHARE = 0.05
#: Fewer pixels of the person's own skin than this (in the whole photo) give no skin colour.
SKIN_COLOUR_MIN_PIXELS = 50
#: At most this many pixels are sampled for the person's skin colour (a median).
SKIN_COLOUR_SAMPLES = 4000
#: A pixel beside the mask is skin to take the local tone from when its chroma (YCrCb) is within this
#: distance of the person's skin colour's and its luminance within this range of that colour's.
SKIN_CHROMA_DISTANCE = 10.0
SKIN_LUMA_RANGE = (0.6, 1.3)
#: The painted skin's texture (:func:`person_skin_grain`): windows this wide (px at the photo's size), the
#: quantile of their detail's standard deviation taken as the skin's own texture level, at most this many
#: windows; the unit noise it scales (:func:`_grain_noise`).
GRAIN_WINDOW = 9
GRAIN_QUANTILE = 0.1
GRAIN_SAMPLES = 400
_GRAIN_TILE = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
#: Painted skin is shaded like a rounded body (:func:`body_roundness`): this much darker at the body's
#: outline than at its middle (a cylinder lit from the camera with a soft fill), smoothed over this
#: many pixels (at the fill resolution) so the rows' runs do not show.
ROUNDNESS_DEPTH = 0.25
ROUNDNESS_SMOOTHING = 2.0
#: Pixels next to the mask often still carry the old garment (antialiased segmentation edge); the fill
#: treats a band this wide (at fill resolution) as unknown too, so it samples from beyond it.
FILL_GUARD = 2
#: The kinds of the replaced region painted with skin.
SKIN_KINDS = (mask_kinds.REPLACE_SKIN, mask_kinds.REPLACE_LIMB)
#: The painted skin's edge against the other kinds' fill is antialiased by this blur (sigma, photo pixels).
KIND_EDGE_SIGMA = 0.8
#: Kept bare skin fades into the painted skin beside it over about twice this (sigma, fraction of the long
#: side).
KEPT_SKIN_FADE = 0.004
#: Shading is computed at this long side (of the whole photo): it is smooth by construction.
SHADING_LONG_SIDE = 256
#: Median filter (px at SHADING_LONG_SIDE): removes structures narrower than ~3 px there (~12 px at 1024).
SHADING_MEDIAN = 7
#: Guided-filter window radius, as a fraction of SHADING_LONG_SIDE: the scale of folds and shadows.
SHADING_RADIUS = 0.02
#: Guided-filter regulariser on log-luminance: a window whose log-luminance varies by much more than
#: sqrt(eps) (~0.3, i.e. ~35 %) holds an edge, kept out of the shading; gentler variation is shading.
SHADING_EPS = 0.1
#: Added to luminance before the log, so a dark old garment (L near 0) does not turn noise into shading.
SHADING_DARK_OFFSET = 40.0
SHADING_RANGE = (0.7, 1.3)
#: Pattern strength (:func:`_pattern_strength`, RMS log-luminance steps) at which the old garment's shading
#: is trusted half, falling steeply (4th power) past it: a plain garment's folds leave ~0.01-0.05, sharp
#: creases ~0.07 (trusted ~0.93), a bold print, lettering or a check ~0.2 (~0.2).
SHADING_PATTERN = 0.14
#: Sigma (px) of the antialiasing of the clothing mask's edge.
EDGE_SIGMA = 0.8
WARMUP_SIZE = (256, 192)
#: Sub-steps reported through :func:`tryon.progress.report_progress`: fill, shading, composite.
LITE_STEPS = 3


class LiteInpaint:
    """Composite + shading transfer + fill: the weight-free inpaint stage (CPU, deterministic)."""

    def setup(self) -> None:
        """Nothing to load; one small run so the first request pays no OpenCV first-call costs."""
        height, width = WARMUP_SIZE
        person = np.full((height, width, 3), 128, np.uint8)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
        garment = np.zeros((height, width, 4), np.uint8)
        garment[height // 4 : 2 * height // 3, width // 4 : 3 * width // 4] = (200, 30, 30, 255)
        self.run(InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person))

    def run(self, inputs: InpaintInput, /) -> InpaintOutput:
        inputs.validate()  # the seed is validated but unused: this backend is deterministic
        person = inputs.person
        values = inputs.clothing_mask
        mask = mask_kinds.edit_region(values)
        rows, cols = _bounding_box(mask, margin=_margin((person.shape[0], person.shape[1])))

        person_box = person[rows, cols]
        mask_box = mask[rows, cols]
        values_box = values[rows, cols]
        garment_box = inputs.warped_garment[rows, cols]

        replace_box = mask_kinds.replace_region(values_box)
        if replace_box.any():
            # The person's skin is read from the whole photo: the face is often outside the mask's box.
            fill = fill_by_kind(
                person_box,
                values_box,
                skin_colour=person_skin_colour(person, values),
                skin_grain=person_skin_grain(person, values),
            )
        else:
            fill = person_box.astype(np.float32)
        report_progress(1, LITE_STEPS)
        garment_alpha = garment_box[..., 3].astype(np.float32) * np.float32(1.0 / 255.0)
        garment_alpha *= mask_box
        shading = shading_from_photo(person_box, mask_box, garment_alpha, long_side=max(person.shape[:2]))
        shaded_garment = garment_box[..., :3].astype(np.float32) * shading[..., None]
        report_progress(2, LITE_STEPS)

        alpha = garment_alpha * antialiased_mask(mask_box)
        # garment * alpha + fill * (1 - alpha), per pixel, in one multi-threaded pass.
        composite = cv2.blendLinear(shaded_garment, fill, alpha, np.float32(1.0) - alpha)
        composite_u8 = np.clip(composite + 0.5, 0, 255).astype(np.uint8)

        image = person.copy()
        image_box = image[rows, cols]  # a view: writing it writes the output
        np.copyto(image_box, composite_u8, where=mask_box[..., None])  # boolean indexing copies twice
        report_progress(3, LITE_STEPS)
        return InpaintOutput(image=image)

    def info(self) -> BackendInfo:
        return BackendInfo(stage="inpaint", backend="lite", device="cpu", models=())


# ---------------------------------------------------------------------------------------------- steps


def person_skin_colour(person: RGBImage, values: npt.NDArray[np.uint8]) -> FloatImage | None:
    """The person's skin colour (RGB, float32): the median of the pixels the clothing mask marks as their
    visible skin (:data:`tryon.vision.mask_kinds.SKIN_SOURCE`), or None when it marks too few."""
    rows, columns = np.nonzero(values == mask_kinds.SKIN_SOURCE)
    if len(rows) < SKIN_COLOUR_MIN_PIXELS:
        return None
    step = max(1, len(rows) // SKIN_COLOUR_SAMPLES)
    return np.median(person[rows[::step], columns[::step]], axis=0).astype(np.float32)


def person_skin_grain(person: RGBImage, values: npt.NDArray[np.uint8]) -> float:
    """The fine texture of the person's visible skin (:data:`tryon.vision.mask_kinds.SKIN_SOURCE`): the
    standard deviation of its luminance detail (each pixel less its 3 x 3 mean) in small windows, taken
    where that skin is smoothest (the :data:`GRAIN_QUANTILE` of the windows: pores and noise, not stubble,
    eyelashes or the face's outline); 0 when the mask marks too little skin. Measured on at most
    :data:`GRAIN_SAMPLES` windows spread over that skin."""
    height, width = values.shape
    radius = GRAIN_WINDOW // 2
    # Window centres on every other row and column: a quarter of the pixels to search, as many windows.
    centres = values[radius : height - radius : 2, radius : width - radius : 2] == mask_kinds.SKIN_SOURCE
    rows, columns = np.nonzero(centres)
    if 4 * len(rows) < SKIN_COLOUR_MIN_PIXELS:
        return 0.0
    step = max(1, len(rows) // GRAIN_SAMPLES)
    rows, columns = 2 * rows[::step] + radius, 2 * columns[::step] + radius
    offsets = np.arange(-radius, radius + 1)
    windows = person[
        rows[:, None, None] + offsets[None, :, None], columns[:, None, None] + offsets[None, None, :]
    ].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (n, w, w) luminance
    size = GRAIN_WINDOW
    means = sum(windows[:, i : size - 2 + i, j : size - 2 + j] for i in range(3) for j in range(3)) / 9.0
    detail = windows[:, 1:-1, 1:-1] - means
    return float(np.quantile(detail.reshape(len(rows), -1).std(axis=1), GRAIN_QUANTILE))


def _grain_noise(height: int, width: int) -> FloatImage:
    """Unit white noise of the given size: a fixed seeded tile repeated (its period is far beyond what a
    grain this faint lets anyone see), so the backend stays deterministic and cheap."""
    reps = (-(-height // _GRAIN_TILE.shape[0]), -(-width // _GRAIN_TILE.shape[1]))
    return np.tile(_GRAIN_TILE, reps)[:height, :width]


def fill_by_kind(
    person: RGBImage,
    values: npt.NDArray[np.uint8],
    skin_colour: FloatImage | None = None,
    skin_grain: float = 0.0,
) -> FloatImage:
    """What lies under the garment being replaced, each pixel from one kind of surface (float32 RGB).

    ``values`` is the clothing mask (:mod:`tryon.vision.mask_kinds`). Pixels outside the replaced region
    keep the photo. Inside it, computed at reduced resolution and upsampled:

    - "nearest": the colour of the nearest pixel outside the replaced region (background beside the body);
    - "skin": the person's skin (``skin_colour``, from their face, neck and hands; else the skin-coloured
      pixels around the mask), toned like the bare skin beside the mask and shaded by the photo's
      luminance at a low frequency only (:func:`_skin_fill`), with white luminance noise of standard
      deviation ``skin_grain`` (the photo's skin texture, :func:`person_skin_grain`); "nearest" when no
      skin shows anywhere;
    - "below": the first pixel below it outside the replaced region, in the same column (the trousers
      continued upwards under a top shorter than the old one);
    - "off body": the colour of the nearest backdrop pixel (the old garment stood off the body: a skirt's
      flare, the cloth between the legs), or "nearest" when the mask marks no backdrop.

    Each pixel copies one source, so colours of different surfaces never mix into a smear; a light blur
    hides the seams between sources of one kind.
    """
    height, width = values.shape
    small_height, small_width = shrunk_size(height, width, FILL_LONG_SIDE)
    small_size = (small_width, small_height)
    small_person = cv2.resize(person, small_size, interpolation=cv2.INTER_AREA)
    replaced = mask_kinds.replace_region(values)
    # INTER_AREA then > 0: a fill pixel that saw any replaced pixel is unknown, plus a guard band (the
    # segmentation's antialiased edge still carries the old garment).
    small_replaced = cv2.resize(replaced.astype(np.uint8) * 255, small_size, interpolation=cv2.INTER_AREA) > 0
    guard = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FILL_GUARD + 1, 2 * FILL_GUARD + 1))
    unknown = cv2.dilate(small_replaced.astype(np.uint8), guard).astype(bool)
    if unknown.all():
        return np.full((height, width, 3), 128.0, np.float32)
    small_values = cv2.resize(values, small_size, interpolation=cv2.INTER_NEAREST)
    kind_values = np.where(small_replaced, small_values, cv2.dilate(small_values, guard))
    fill = small_person.astype(np.float32)

    nearest = _nearest_source(unknown, ~unknown)
    fill[unknown] = fill[nearest[0][unknown], nearest[1][unknown]]

    skin_kind = unknown & np.isin(kind_values, SKIN_KINDS)
    skin = None
    if skin_kind.any():
        skin = _skin_fill(small_person, small_values, unknown, skin_kind, skin_colour)
    if skin is not None:
        fill[skin_kind] = skin.fill[skin_kind]

    off_body_kind = unknown & (kind_values == mask_kinds.REPLACE_OFF_BODY)
    if off_body_kind.any():
        # Behind a garment standing off the body is the backdrop: copied from the nearest backdrop pixel.
        backdrop_sources = ~unknown & mask_kinds.backdrop_region(small_values)
        if backdrop_sources.sum() >= SKIN_MIN_SOURCES:
            rows, columns = _nearest_source(unknown, backdrop_sources)
            fill[off_body_kind] = small_person[rows[off_body_kind], columns[off_body_kind]]

    below_kind = unknown & (kind_values == mask_kinds.REPLACE_BELOW)
    if below_kind.any():
        column_fill = small_person.astype(np.float32)
        for row in range(small_height - 2, -1, -1):
            take = unknown[row]
            column_fill[row, take] = column_fill[row + 1, take]
        has_source = np.zeros_like(unknown)
        has_source[-1] = ~unknown[-1]
        for row in range(small_height - 2, -1, -1):
            has_source[row] = np.where(unknown[row], has_source[row + 1], True)
        use = below_kind & has_source
        fill[use] = column_fill[use]

    # Blur each kind within itself only, so no colour crosses from one kind (or from outside) to another.
    kinds = np.where(skin_kind, 1, np.where(below_kind, 2, np.where(off_body_kind, 3, 0)))
    for kind in np.unique(kinds[unknown]):
        if kind == 1:
            continue  # the skin fill is smooth by construction
        weight = (unknown & (kinds == kind)).astype(np.float32)
        blurred = cv2.GaussianBlur(fill * weight[..., None], (0, 0), FILL_BLUR)
        norm = cv2.GaussianBlur(weight, (0, 0), FILL_BLUR)[..., None]
        fill = np.where(weight[..., None] > 0, blurred / np.maximum(norm, 1e-3), fill)
    painted = None
    if skin is not None:
        # Painted skin and the other kinds are upsampled as two layers and cut along the clothing mask's
        # own (full-resolution) kind boundary: cut at the fill's resolution, a shoulder painted beside the
        # backdrop refilled above it had a staircase outline of the fill's pixels.
        rows, columns = _nearest_source(skin_kind, ~skin_kind)
        fill[skin_kind] = fill[rows[skin_kind], columns[skin_kind]]
        painted = replaced & np.isin(values, SKIN_KINDS)
    fill = cv2.resize(fill, (width, height), interpolation=cv2.INTER_LINEAR)
    skin_layer = None
    if skin is not None and painted is not None:
        skin_layer = cv2.resize(skin.fill, (width, height), interpolation=cv2.INTER_LINEAR)
        edge = cv2.GaussianBlur(painted.astype(np.float32), (0, 0), KIND_EDGE_SIGMA)[..., None]
        fill += edge * (skin_layer - fill)
    # Outside the replaced region the photo itself, at full resolution.
    result = np.where(replaced[..., None], fill, person.astype(np.float32)).astype(np.float32)
    if painted is not None and skin_grain > 0 and painted.any():
        # The photo's own fine texture (sensor noise, pores) on the painted skin, which would read as
        # painted flat without it: luminance noise of the person's skin texture level, deterministic. Only
        # over the painted pixels' bounding box: a full-frame pass costs as much as the fill itself.
        box = _bounding_box(painted, margin=0)
        grain = _grain_noise(*painted[box].shape) * (painted[box] * np.float32(skin_grain))
        result[box] += grain[..., None]
    if skin is not None and skin.bare.any():
        # The skin the old garment left bare (a neckline, a gap) is the photo's own, at full resolution,
        # faded into the fill around it; only pixels that are skin themselves, so the old garment's thin
        # parts between (a strap, a seam) are filled.
        bare = cv2.GaussianBlur(skin.bare.astype(np.float32), (0, 0), FILL_BLUR)
        keep = cv2.resize(bare, (width, height), interpolation=cv2.INTER_LINEAR)
        kept = replaced & (keep > 0.01)
        pixels = person[kept]
        share = keep[kept] * _close_to_skin(pixels.reshape(-1, 1, 3), skin.colour).reshape(-1)
        share = share[:, None]
        result[kept] = share * pixels + (1.0 - share) * result[kept]
    if skin_layer is not None and painted is not None and (small_values == mask_kinds.MAY_COVER_SKIN).any():
        # The bare skin the segmentation kept (the photo's own) fades into the painted skin beside it over
        # a few pixels: cut at the old garment's edge, the two met in a visible step (a neckline's outline
        # drawn on the chest).
        sigma = KEPT_SKIN_FADE * max(height, width)
        fade = np.clip(2.0 * cv2.GaussianBlur(painted.astype(np.float32), (0, 0), sigma), 0.0, 1.0)
        faded = (values == mask_kinds.MAY_COVER_SKIN) & (fade > 0.01)
        share = fade[faded][:, None]
        result[faded] = share * skin_layer[faded] + (1.0 - share) * result[faded]
    return result


@dataclass(frozen=True)
class SkinFill:
    fill: FloatImage  # float32 RGB at the fill resolution, meaningful on the skin kind's pixels
    bare: npt.NDArray[np.bool_]  # pixels of the skin kind that already show bare skin in the photo
    colour: FloatImage  # the person's skin colour it was made from (RGB)


def _skin_fill(
    small_person: RGBImage,
    small_values: npt.NDArray[np.uint8],
    unknown: npt.NDArray[np.bool_],
    skin_kind: npt.NDArray[np.bool_],
    skin_colour: FloatImage | None,
) -> SkinFill | None:
    """Bare skin where the old garment was (at the fill resolution), or None when the photo shows no skin
    to take it from.

    Never the old garment's colour: the person's skin colour (``skin_colour``; without one, the median of
    the skin-coloured pixels on the body around the mask), toned by the bare skin beside the mask (pixels
    of the person's own skin or of the body around it whose colour is close to ``skin_colour``), averaged
    over a wide window so it varies smoothly: its shading is the gentle gradient between the bare skin
    around it. Not the photo's luminance under the mask: that is the old garment's (its print, a dark
    yoke, the mesh's folds), and even toned down it reads as dirt on the skin.
    """
    person = small_person.astype(np.float32)
    known = ~unknown
    # The person around the mask (the backdrop, however skin-coloured, is no skin).
    around = known & ~mask_kinds.backdrop_region(small_values)
    if skin_colour is None:
        # No face, neck or hands to learn from: skin-coloured pixels on the body around the garment (bare
        # arms, shoulders), where hair or a beige backdrop cannot be; else any in the box.
        skin_coloured = known & _skin_coloured(small_person)
        candidates = skin_coloured & (small_values == mask_kinds.MAY_COVER)
        if candidates.sum() < SKIN_MIN_SOURCES:
            candidates = skin_coloured
        if candidates.sum() < SKIN_MIN_SOURCES:
            return None
        skin_colour = np.median(person[candidates], axis=0).astype(np.float32)
    colour = np.asarray(skin_colour, np.float32)

    close = _close_to_skin(small_person, colour)
    # Inside the replaced region, skin the old garment did not cover (a neckline) stays the photo's; away
    # from the garment's edge, whose antialiased pixels are neither.
    bare = cv2.erode(
        cv2.morphologyEx((skin_kind & close).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)),
        np.ones((3, 3), np.uint8),
    ).astype(bool)
    # The person's own visible skin (the segmentation's skin-model pixels: a neck in shadow included) is a
    # source as it is; any other pixel around only when its colour is close to the skin colour.
    sources = (known & (small_values == mask_kinds.SKIN_SOURCE)) | (around & close) | bare
    long_side = max(small_person.shape[:2])
    sigma = SKIN_LOCAL_SIGMA * long_side
    weight = sources.astype(np.float32)
    roundness = body_roundness(small_values)[..., None]
    # The sources' colour without the body's roundness (their albedo), averaged, then shaded again where
    # the fill lies: skin painted by a torso's side is darker than at its middle, as the skin around is.
    albedo = person / roundness
    # Far from any bare skin the fill is the skin of the body being painted: the bare skin the old garment
    # left (a neckline: the same chest, in the same light; the segmentation's kept skin, or skin inside the
    # replaced region), when there is enough of it; else the person's skin colour. Faces are pinker and
    # darker than a chest in a studio's light, and painted in the face's colour the chest was a darker
    # plate below its own bare skin.
    body_skin = bare | (known & (small_values == mask_kinds.MAY_COVER_SKIN))
    tone = colour
    if body_skin.sum() >= SKIN_BARE_MIN_SHARE * skin_kind.sum():
        tone = np.median(albedo[body_skin], axis=0).astype(np.float32)
    weighted = cv2.GaussianBlur(albedo * weight[..., None], (0, 0), sigma)
    density = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    local = (weighted + SKIN_PRIOR_WEIGHT * tone) / (density + SKIN_PRIOR_WEIGHT)
    near_sigma = SKIN_NEAR_SIGMA * long_side
    near_weighted = cv2.GaussianBlur(albedo * weight[..., None], (0, 0), near_sigma)
    near_density = cv2.GaussianBlur(weight, (0, 0), near_sigma)[..., None]
    near = near_weighted / np.maximum(near_density, 1e-3)
    nearness = np.clip(near_density / SKIN_NEAR_DENSITY, 0.0, 1.0)
    local = nearness * near + (1.0 - nearness) * local
    low, high = SKIN_LOCAL_RANGE
    local = np.clip(local, low * tone, high * tone) * roundness
    return SkinFill(fill=local, bare=bare, colour=colour)


def body_roundness(values: npt.NDArray[np.uint8]) -> FloatImage:
    """How much of the light a rounded body turns towards the camera, per pixel: 1 at the middle of each
    row's run of the body (the clothing mask's pixels that are neither backdrop nor old garment standing
    off the body), falling to ``1 - ROUNDNESS_DEPTH`` at its outline, as a cylinder's cross-section lit
    from the front with a soft fill (``1 - depth * (1 - cos)``); 1 where a run reaches the frame's side
    (its outline is not seen)."""
    body = ~mask_kinds.backdrop_region(values) & (values != mask_kinds.REPLACE_OFF_BODY)
    width = body.shape[1]
    columns = np.arange(width, dtype=np.int32)
    left = np.zeros_like(body)
    left[:, 1:] = body[:, :-1]
    right = np.zeros_like(body)
    right[:, :-1] = body[:, 1:]
    # Each body pixel's run: the last run start at or before it, the first run end at or after it.
    start = np.maximum.accumulate(np.where(body & ~left, columns, -1), axis=1)
    stop = np.minimum.accumulate(np.where(body & ~right, columns + 1, width + 1)[:, ::-1], axis=1)[:, ::-1]
    half = 0.5 * (stop - start).astype(np.float32)
    u = (columns + 0.5 - start - half) / np.maximum(half, 1.0)
    round_body = body & (start > 0) & (stop < width) & (stop - start >= 3)
    depth = np.float32(ROUNDNESS_DEPTH) * (1.0 - np.sqrt(np.maximum(1.0 - u * u, 0.0)))
    roundness = np.where(round_body, 1.0 - depth, 1.0).astype(np.float32)
    return cv2.GaussianBlur(roundness, (0, 0), ROUNDNESS_SMOOTHING)


def _close_to_skin(rgb: RGBImage, colour: FloatImage) -> npt.NDArray[np.bool_]:
    """Pixels whose chroma is close to ``colour``'s and whose luminance is not far from it."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    reference = (
        cv2.cvtColor(np.clip(colour + 0.5, 0, 255).astype(np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2YCrCb)
        .reshape(3)
        .astype(np.float32)
    )
    chroma = np.hypot(ycrcb[..., 1] - reference[1], ycrcb[..., 2] - reference[2])
    low, high = SKIN_LUMA_RANGE
    return (
        (chroma < SKIN_CHROMA_DISTANCE)
        & (ycrcb[..., 0] >= low * reference[0])
        & (ycrcb[..., 0] <= high * reference[0])
    )


def _nearest_source(
    unknown: npt.NDArray[np.bool_], sources: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """For every pixel, the (row, column) of its nearest ``sources`` pixel (Euclidean)."""
    _, labels = cv2.distanceTransformWithLabels(
        (~sources).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    source_rows, source_columns = np.nonzero(sources)  # labels number the zero pixels in scan order
    index = np.clip(labels - 1, 0, len(source_rows) - 1)
    return source_rows[index], source_columns[index]


def _skin_coloured(rgb: RGBImage) -> npt.NDArray[np.bool_]:
    """The classic YCrCb skin box (any skin tone, lit normally)."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    return (
        (ycrcb[..., 0] > 40)
        & (ycrcb[..., 1] >= 135)
        & (ycrcb[..., 1] <= 173)
        & (ycrcb[..., 2] >= 77)
        & (ycrcb[..., 2] <= 127)
    )


def shading_from_photo(
    person: RGBImage,
    mask: npt.NDArray[np.bool_],
    weight: FloatImage,
    *,
    long_side: int,
) -> FloatImage:
    """Multiplicative shading of the photo inside ``mask``: ``exp(log L - base)``, ``base`` edge-aware.

    Computed at reduced resolution (shading is smooth): a median filter first removes thin structures
    (a print's lines, seams, text), then ``base`` is a self-guided filter of ``log L`` over the mask only.
    Windows that straddle a strong edge (old garment against skin or background, a dark panel on a light
    shirt) keep it in ``base``, so it is not transferred; gentle variations (folds, shadows) are smoothed
    out of ``base`` and so become shading, faded out where the old garment is patterned
    (:func:`_pattern_strength` past :data:`SHADING_PATTERN`). The result is clipped to
    :data:`SHADING_RANGE` and scaled to a ``weight``-weighted mean of 1, so the garment's mean colour is
    kept.
    """
    height, width = mask.shape
    scale = shrink_factor(long_side, long_side, SHADING_LONG_SIDE)
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    luminance = cv2.resize(cv2.cvtColor(person, cv2.COLOR_RGB2GRAY), small_size, interpolation=cv2.INTER_AREA)
    inside = cv2.resize(mask.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    radius = max(1, round(SHADING_RADIUS * SHADING_LONG_SIDE))
    pattern = _pattern_strength(
        np.log(luminance.astype(np.float32) + SHADING_DARK_OFFSET), inside, radius=radius
    )
    luminance = cv2.medianBlur(luminance, SHADING_MEDIAN)
    log_luminance = np.log(luminance.astype(np.float32) + SHADING_DARK_OFFSET)
    base, edge_strength = _masked_guided_filter(log_luminance, inside, radius=radius, eps=SHADING_EPS)
    # Beside a strong edge the filter leaves a halo (a window half across the edge is partly smoothed):
    # fade the shading out where windows see an edge. Where the old garment is patterned, its pattern
    # and its folds cannot be told apart: fade the shading out there too.
    confidence = 1.0 / (1.0 + np.square(np.square(pattern / SHADING_PATTERN)))
    detail = (log_luminance - base) * np.square(1.0 - edge_strength) * confidence
    small_shading = np.clip(np.exp(detail), *SHADING_RANGE)
    shading = cv2.resize(small_shading, (width, height), interpolation=cv2.INTER_LINEAR)
    total_weight = float(weight.sum(dtype=np.float64))
    if total_weight > 0:
        shading *= np.float32(total_weight / float((shading * weight).sum(dtype=np.float64)))
    return shading


def antialiased_mask(mask: npt.NDArray[np.bool_]) -> FloatImage:
    """1 inside ``mask`` away from its edge, falling to ~0.5 on its edge pixels, 0 outside."""
    inside = mask.astype(np.float32)
    return cv2.GaussianBlur(inside, (0, 0), EDGE_SIGMA) * inside


def _pattern_strength(log_luminance: FloatImage, inside: FloatImage, *, radius: int) -> FloatImage:
    """How patterned the old garment is around each pixel: the RMS of its log-luminance less the 3 x 3
    mean (both over the mask only), over windows of ``radius``. Folds and shadows are gentle ramps at this
    resolution and leave little; a print's, a check's or a stripe's steps leave a lot."""
    weight = np.maximum(cv2.blur(inside, (3, 3)), 1e-4)
    high = (log_luminance - cv2.blur(log_luminance * inside, (3, 3)) / weight) * inside
    window = (2 * radius + 1, 2 * radius + 1)
    coverage = np.maximum(cv2.blur(inside, window), 1e-4)
    return np.sqrt(np.maximum(cv2.blur(high * high, window), 0.0) / coverage)  # blur can dip below 0


def _masked_guided_filter(
    image: FloatImage, inside: FloatImage, *, radius: int, eps: float
) -> tuple[FloatImage, FloatImage]:
    """He et al.'s guided filter of ``image`` guided by itself, with every window mean taken over the
    mask only (``inside`` is the pixels' mask coverage), so what lies outside the mask does not leak in.

    Returns the filtered image and the mean gain of the windows covering each pixel (0: flat or gentle
    variation, smoothed away; towards 1: an edge, kept).
    """
    window = (2 * radius + 1, 2 * radius + 1)
    coverage = np.maximum(cv2.blur(inside, window), 1e-4)

    def masked_mean(values: FloatImage) -> FloatImage:
        return cv2.blur(values * inside, window) / coverage

    mean = masked_mean(image)
    variance = np.maximum(masked_mean(image * image) - mean * mean, 0.0)
    gain = variance / (variance + eps)
    offset = mean * (1.0 - gain)
    mean_gain = masked_mean(gain)
    return mean_gain * image + masked_mean(offset), mean_gain


def _margin(size: tuple[int, int]) -> int:
    """Context kept around the mask's bounding box: room for the fill to sample from."""
    return max(8, round(0.04 * max(size)))


def _bounding_box(mask: npt.NDArray[np.bool_], *, margin: int) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)),
        slice(max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)),
    )
