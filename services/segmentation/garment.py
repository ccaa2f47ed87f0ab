"""The worn garment and skin of the lite segmentation: colour models, seeded GrabCut, mask helpers, labels.

The region the new garment will occupy (per :class:`GarmentCategory`) seeds GrabCut, which finds the
garment currently worn there (sleeves, a long hem, a collar) from its colours. GrabCut runs on a crop of
the body region at ~20k pixels (it costs ~1 us per pixel per iteration); its result is snapped to the
photo's edges by a guided filter. Skin, hands, feet and the head column are never garment, except a collar
below the chin. :func:`build_label_map` fills the 18 Segformer-B2-Clothes labels from these regions.
"""

from __future__ import annotations

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
    category_regions,
    draw_capsules,
    draw_feet,
    draw_polygons,
)
from tryon.types import ClothesLabel, GarmentCategory, RGBImage
from tryon.vision.images import shrink_factor

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
#: Skin: Cr/Cb within this many robust standard deviations of the face's (clamped to the range below).
SKIN_SIGMAS = 3.0
SKIN_SIGMA_RANGE = (4.0, 8.0)
#: The middle of an arm, as a share of its capsule's radius: where a long sleeve is, if any.
ARM_MIDDLE = 0.7
#: The classic YCrCb skin box, used when no face is visible to learn the person's skin from.
GENERIC_SKIN = ((133.0, 173.0), (77.0, 127.0))

GARMENT_LABEL = {
    GarmentCategory.UPPER_BODY: ClothesLabel.UPPER_CLOTHES,
    GarmentCategory.LOWER_BODY: ClothesLabel.PANTS,
    GarmentCategory.DRESS: ClothesLabel.DRESS,
}


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


def grow_mask(mask: BoolMask, radius: int) -> BoolMask:
    if radius <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def components_touching(mask: BoolMask, seeds: BoolMask) -> BoolMask:
    """The connected components of ``mask`` that contain a ``seeds`` pixel."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    keep = np.zeros(count, bool)
    keep[np.unique(labels[seeds & mask])] = True
    keep[0] = False
    return keep[labels]


def fill_holes(mask: BoolMask, max_fraction: float) -> BoolMask:
    """``mask`` with its enclosed holes smaller than ``max_fraction`` of its area filled (prints, logos)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    height, width = mask.shape
    x, y, w, h, area = (stats[:, column] for column in range(5))
    touches_border = (x == 0) | (y == 0) | (x + w == width) | (y + h == height)
    is_hole = ~touches_border & (area <= max_fraction * float(mask.sum()))
    is_hole[0] = False  # label 0 is the mask itself
    return mask | is_hole[labels]


def resize_mask(mask: npt.NDArray[Any], height: int, width: int) -> npt.NDArray[np.float32]:
    return cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class GarmentEstimate:
    garment: BoolMask  # the worn garment, photo frame
    grown_garment: BoolMask  # the same, grown by a few pixels (its antialiased edge)
    skin: BoolMask  # skin-coloured pixels, photo frame


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
    inside = resize_mask(person_mask[y_lo:y_hi, x_lo:x_hi], crop_h, crop_w) > 0.5

    regions = category_regions(shapes, category, frame)
    # Speckles of "skin" in prints and textures are noise: a skin region is at least a few pixels wide.
    skin = cv2.morphologyEx(
        skin_model.mask(image).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
    )
    skin = skin.astype(bool)
    seeds = np.full((crop_h, crop_w), cv2.GC_BGD, np.uint8)
    seeds[inside & regions.allowed] = cv2.GC_PR_BGD
    # A top's or a dress's sleeves: the upper arms, and on down the arms wherever they are not bare (a
    # long sleeve in shadow by the hips is still the sleeve; GrabCut's colours decide). Only the arms'
    # middle: their capsules are wide, and by the hips their edges hold the skirt or trousers.
    sleeves = regions.sleeves
    if category is not GarmentCategory.LOWER_BODY:
        arm_middles = [
            Capsule(arm.start, arm.end, ARM_MIDDLE * arm.start_radius, ARM_MIDDLE * arm.end_radius)
            for arm in shapes.arms["right"] + shapes.arms["left"]
        ]
        sleeves = sleeves | (draw_capsules(frame, arm_middles) & regions.arms)
    seeds[inside & regions.allowed & (regions.target | sleeves) & ~skin] = cv2.GC_PR_FGD
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
        garment = components_touching(garment, core)
        garment = fill_holes(garment, max_fraction=0.05) & inside & ~excluded
    else:  # nothing to learn the garment's colours from (e.g. a bare torso): no worn garment
        garment = np.zeros_like(inside)

    # GrabCut's pixels are ~7 photo pixels wide at 1024 px: its mask is upsampled to a finer copy of the
    # crop, snapped to the photo's edges there by a guided filter, then upsampled to the photo.
    refine_scale = shrink_factor(height, width, REFINE_LONG_SIDE)
    refine_w, refine_h = (
        max(8, round((x_hi - x_lo) * refine_scale)),
        max(8, round((y_hi - y_lo) * refine_scale)),
    )
    guide = cv2.resize(person[y_lo:y_hi, x_lo:x_hi], (refine_w, refine_h), interpolation=cv2.INTER_AREA)
    soft = guided_filter(guide, resize_mask(garment, refine_h, refine_w), GUIDED_RADIUS, GUIDED_EPS)
    # Grown at the finer scale, where the kernel is small (a full-size dilation costs more than GrabCut).
    grown = grow_mask(soft > 0.5, max(1, round(growth * refine_scale))) if growth > 0 else soft > 0.5

    def to_photo(mask: npt.NDArray[Any]) -> BoolMask:
        """Upsample a crop-frame mask (bool or soft) and paste it where the crop came from."""
        photo = np.zeros((height, width), bool)
        photo[y_lo:y_hi, x_lo:x_hi] = resize_mask(mask, y_hi - y_lo, x_hi - x_lo) > 0.5
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
        feet = person_mask & draw_feet(frame, shapes, (side,)) & ~garment
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
