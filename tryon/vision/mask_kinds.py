"""What the lite segmentation tells the lite inpainter through the clothing mask's values.

Every consumer reads ``clothing_mask > 127`` as the region to edit; the lite stages also read the value:

- :data:`REPLACE_NEAREST` / :data:`REPLACE_SKIN` / :data:`REPLACE_LIMB` / :data:`REPLACE_BELOW`
  (>= :data:`REPLACE_MIN`): the worn garment, to be replaced. Where the new garment does not cover it, it
  is filled from one kind of surface only: the nearest surface around the mask (background beside the
  body), the person's skin (a midriff, legs; :data:`REPLACE_LIMB` is an old sleeve on an arm or an old
  collar on the neck, which only a sleeved or high-necked new garment covers), or the garment below,
  extended upwards (trousers under an old long top).
  :data:`REPLACE_OFF_BODY` is worn garment away from the body (a skirt's flare, the cloth between the
  legs, a loose hem standing off the hips): only a garment cut as wide covers it; elsewhere the backdrop
  (:data:`BACKDROP`, the photo's pixels outside the person) shows through once the old garment is gone.
- :data:`MAY_COVER`: the body around it, where the new garment may reach (longer than the old one, new
  sleeves along the arms). Where the new garment does not cover it the photo stays as it is.
  :data:`MAY_COVER_BACKDROP` is the same reach over the backdrop beside the body (a wider cut): edited
  alike, and a backdrop pixel to the lite inpainter (a source for the backdrop, never for skin).
  :data:`MAY_COVER_SKIN` is the bare skin the worn garment leaves inside the category's region (a
  neckline, bare shoulders, a midriff): the photo's own where the new garment does not cover it, never
  painted over, and to the lite inpainter the tone of the body it paints.
- :data:`BACKDROP` (below :data:`EDIT_MIN`, so not edited): the photo's background, the source the lite
  inpainter fills off-body pixels from.
- :data:`SKIN_SOURCE` (below :data:`EDIT_MIN`, so not edited): the person's own visible skin outside the
  edit (the face without eyes, brows and mouth, the neck, the hands): the colour the lite inpainter paints
  bare skin with where the new garment leaves the body uncovered.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

REPLACE_NEAREST = 255
REPLACE_OFF_BODY = 252
REPLACE_SKIN = 248
REPLACE_LIMB = 244
REPLACE_BELOW = 240
REPLACE_MIN = 240
MAY_COVER_SKIN = 176
MAY_COVER = 160
MAY_COVER_BACKDROP = 144
EDIT_MIN = 128
BACKDROP = 16
SKIN_SOURCE = 48
#: The kinds below :data:`EDIT_MIN`: not edited, but carried (and kept by the wire format) as sources.
SOURCE_KINDS = (BACKDROP, SKIN_SOURCE)


def replace_region(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """The pixels whose worn garment is replaced (covered or filled), from a clothing mask."""
    return mask >= REPLACE_MIN


def body_region(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """The replaced pixels any new garment of the category covers: all but the old sleeves on the arms (and
    collars on the neck) and the old garment standing off the body."""
    return (mask >= REPLACE_MIN) & (mask != REPLACE_LIMB) & (mask != REPLACE_OFF_BODY)


def edit_region(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    return mask >= EDIT_MIN


def backdrop_region(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """The photo's background outside the person (edited or not), as far as the clothing mask tells."""
    return (mask == BACKDROP) | (mask == MAY_COVER_BACKDROP)
