"""Full inpainting: SDXL inpainting + OpenPose ControlNet + IP-Adapter Plus, keeping the uploaded garment.

``StableDiffusionXLControlNetInpaintPipeline`` with the SDXL *inpainting* checkpoint (its UNet takes the
masked image and mask as 5 extra input channels, so the region is generated in context) and an OpenPose
ControlNet on the pose image. The pipeline alone would lose the garment: it builds the UNet's conditioning
as ``image * (mask < 0.5)`` (the garment is blanked out of it) and at strength ~1 nothing of the init image
survives in the start latent. So, every part a :class:`~tryon.settings.ModelSettings` field whose default
and reason docs/QUALITY.md ("Inpaint settings") gives:

1. **Start from the garment, per-region strength.** The init image is the person with the warped garment
   composited. The pipeline runs at the request's strength (0.99: full) over the clothing mask, but inside
   the warped garment (eroded by an edge band) the latents are held at the init image's latents, noised to
   the current timestep, until the step at which ``garment_strength`` (0.6) would have started: a
   per-pixel strength map applied in ``callback_on_step_end`` (differential diffusion). The garment's
   colours, print and layout set the start there; its edge band and whatever the warp leaves uncovered
   (old-garment area, arms) are generated from noise.
2. **Condition on the garment image.** IP-Adapter Plus SDXL with its ViT-H CLIP image encoder (diffusers'
   ``load_ip_adapter``), masked to the clothing mask with ``IPAdapterMaskProcessor``, at
   ``ip_adapter_scale``. The image is the warped garment on white. The prompt names only the garment kind.
3. **Optional edges ControlNet.** A second ControlNet (canny SDXL) on the warped garment's edges, as a
   MultiControlNet with the OpenPose one, ending at ``edges_guidance_end`` of the steps. Off by default.
4. **Spend pixels on the garment.** The generation covers a crop around the mask (``crop_margin``), scaled
   to the working size (at most ``crop_max_upscale`` x), and is pasted back into the photo.
5. **Paste-back.** Inside the warped garment eroded by ``paste_back_erode`` and feathered, the garment's
   own pixels return, multiplied by the generated image's shading (its smoothed luminance over the init
   image's); where the generation departs from the warp by more than ``paste_back_max_delta_e`` (an arm
   drawn across the torso) the generation stays.

Outside the (slightly dilated, feathered) clothing mask the output is the person photo, bit-exact.
``deep_cache_interval`` > 1 turns on DeepCache-style feature reuse (:class:`DeepCache`; off by default).

Precision: fp16/bf16 on CUDA, fp32 on the CPU; attention is PyTorch SDPA (diffusers' default). The stock
SDXL VAE overflows in fp16, so diffusers decodes it in fp32 (``force_upcast``); ``vae_model`` may name the
fp16-fix VAE instead, which runs in fp16. Model calls are serialised by a lock; a CUDA out-of-memory error
frees what it can and surfaces as :class:`~tryon.types.StageOverloadedError`, leaving the backend usable.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tryon import models as model_registry
from tryon.cancellation import raise_if_cancelled
from tryon.progress import report_progress
from tryon.settings import ModelSettings
from tryon.types import (
    BackendInfo,
    GarmentCategory,
    GenerationOptions,
    InpaintInput,
    InpaintOutput,
    Mask,
    ModelInfo,
    RGBImage,
    StageOverloadedError,
)

logger = logging.getLogger("services.inpaint.full")

FloatImage = npt.NDArray[np.float32]

#: SDXL's native resolution: the pipeline hands over photos at long side 1024 and they are generated so.
MAX_LONG_SIDE = 1024
#: SDXL was trained on sizes in multiples of 64 (and its UNet downsamples latents 4x): pad up to one.
SIZE_MULTIPLE = 64
#: VAE downscale factor of SDXL (latent pixel = 8 x 8 image pixels).
LATENT_FACTOR = 8
CONTROLNET_SCALE = 1.0
#: The IP-Adapter Plus SDXL files inside the h94/IP-Adapter repo layout (safetensors preferred).
IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHTS = ("ip-adapter-plus_sdxl_vit-h.safetensors", "ip-adapter-plus_sdxl_vit-h.bin")
IP_ADAPTER_IMAGE_ENCODER = "models/image_encoder"
#: Canny thresholds for the edges ControlNet (the canny SDXL ControlNet was trained with 100/200).
CANNY_THRESHOLDS = (100, 200)
#: The generated region reaches this far beyond the clothing mask (fraction of the photo's long side),
#: feathered over the same width, so the model's own seam handling at the mask edge is kept.
MASK_DILATE = 0.01
#: Paste-back: the feather's Gaussian sigma, as a fraction of the erosion width.
PASTE_BACK_FEATHER = 0.5
#: Paste-back shading: Gaussian sigma of the luminance ratio (fraction of the photo's long side). Folds
#: and shadows are broader than this; the print's own detail (which the generation may blur) is finer.
SHADING_SIGMA = 0.006
SHADING_RANGE = (0.5, 1.5)
#: Added to luminance before the ratio, so near-black garments do not turn noise into shading.
SHADING_DARK_OFFSET = 16.0
#: Colour comparison for the paste-back trust test, at this Gaussian sigma (fraction of long side).
TRUST_SIGMA = 0.01
GARMENT_NOUNS = {
    GarmentCategory.UPPER_BODY: "top",
    GarmentCategory.LOWER_BODY: "bottoms",
    GarmentCategory.DRESS: "dress",
}
DEFAULT_NEGATIVE_PROMPT = (
    "deformed, distorted, disfigured, bad anatomy, extra limbs, extra fingers, blurry, low quality, watermark"
)


# ---------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """How a photo (or a crop of it) maps onto the generation canvas: scaled, then padded to ``canvas``."""

    height: int
    width: int
    scaled: tuple[int, int]  # (height, width) after scaling
    canvas: tuple[int, int]  # (height, width), multiples of SIZE_MULTIPLE

    @property
    def scale(self) -> float:
        return self.scaled[0] / self.height


def generation_geometry(
    height: int, width: int, max_long_side: int = MAX_LONG_SIDE, *, max_upscale: float = 1.0
) -> Geometry:
    """Scale to ``max_long_side`` (up by at most ``max_upscale``, down as needed), pad to multiples of 64."""
    scale = min(max_upscale, max_long_side / max(height, width))
    scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
    canvas = tuple(math.ceil(side / SIZE_MULTIPLE) * SIZE_MULTIPLE for side in scaled)
    return Geometry(height=height, width=width, scaled=scaled, canvas=(canvas[0], canvas[1]))


def to_canvas(image: npt.NDArray[np.uint8], geometry: Geometry, *, border: int) -> npt.NDArray[np.uint8]:
    """Scale ``image`` to the generation size and pad it right/bottom to the canvas."""
    if geometry.scaled != (geometry.height, geometry.width):
        upscaling = geometry.scaled[0] > geometry.height
        interpolation = (
            cv2.INTER_NEAREST if image.ndim == 2 else cv2.INTER_CUBIC if upscaling else cv2.INTER_AREA
        )
        image = cv2.resize(image, geometry.scaled[::-1], interpolation=interpolation)
    pad_bottom = geometry.canvas[0] - geometry.scaled[0]
    pad_right = geometry.canvas[1] - geometry.scaled[1]
    if pad_bottom or pad_right:
        image = cv2.copyMakeBorder(image, 0, pad_bottom, 0, pad_right, border, value=0)
    return image


def from_canvas(image: npt.NDArray[np.uint8], geometry: Geometry) -> npt.NDArray[np.uint8]:
    """Crop the padding off and scale back to the photo's (or crop's) exact size."""
    image = image[: geometry.scaled[0], : geometry.scaled[1]]
    if geometry.scaled != (geometry.height, geometry.width):
        downscaling = geometry.scaled[0] > geometry.height
        interpolation = cv2.INTER_AREA if downscaling else cv2.INTER_CUBIC
        image = cv2.resize(image, (geometry.width, geometry.height), interpolation=interpolation)
    return np.ascontiguousarray(image)


def mask_crop(mask: npt.NDArray[np.bool_], margin: float, *, min_pad: int = 0) -> tuple[slice, slice]:
    """The crop generated: the mask's bounding box grown by ``margin`` x its long side (at least
    ``min_pad`` px) on every side, clipped to the photo (like diffusers' ``padding_mask_crop``, with the
    padding relative to the mask)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    pad = max(min_pad, round(margin * max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)))
    return (
        slice(max(0, rows[0] - pad), min(height, rows[-1] + 1 + pad)),
        slice(max(0, cols[0] - pad), min(width, cols[-1] + 1 + pad)),
    )


# ---------------------------------------------------------------------------------------------- inputs


def composite_garment(person: RGBImage, warped_garment: npt.NDArray[np.uint8], mask: Mask) -> RGBImage:
    """The init image: the warped garment laid over the person inside the clothing mask."""
    alpha = (warped_garment[..., 3:4].astype(np.float32) / 255.0) * (mask[..., None] > 0)
    blended = person.astype(np.float32) * (1.0 - alpha) + warped_garment[..., :3].astype(np.float32) * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def default_prompt(category: GarmentCategory) -> str:
    """The garment's kind only: its colours and print come from the init latents and the IP-Adapter, and
    a colour word would pull the result towards the word's idea of the colour."""
    return (
        f"a photo of a person wearing a {GARMENT_NOUNS[category]}, realistic fabric texture, natural fit "
        "and folds, high quality, detailed"
    )


def garment_reference(warped_garment: npt.NDArray[np.uint8]) -> RGBImage:
    """The IP-Adapter's image: the warped garment's opaque part on white, padded to a square (the CLIP
    image processor centre-crops, which would cut a tall garment)."""
    alpha = warped_garment[..., 3]
    if not (alpha > 0).any():
        return np.full((64, 64, 3), 255, np.uint8)
    rows = np.flatnonzero((alpha > 0).any(axis=1))
    cols = np.flatnonzero((alpha > 0).any(axis=0))
    box = warped_garment[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    weight = box[..., 3:4].astype(np.float32) / 255.0
    on_white = box[..., :3].astype(np.float32) * weight + 255.0 * (1.0 - weight)
    height, width = on_white.shape[:2]
    side = max(height, width)
    square = np.full((side, side, 3), 255.0, np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = on_white
    return np.clip(square + 0.5, 0, 255).astype(np.uint8)


def garment_edges(warped_garment: npt.NDArray[np.uint8]) -> RGBImage:
    """Canny edges of the warped garment over mid-grey (silhouette, seams and print), white on black."""
    weight = warped_garment[..., 3:4].astype(np.float32) / 255.0
    grey = warped_garment[..., :3].astype(np.float32) * weight + 128.0 * (1.0 - weight)
    luminance = cv2.cvtColor(np.clip(grey + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(luminance, *CANNY_THRESHOLDS)
    return np.repeat(edges[..., None], 3, axis=2)


def strength_map(
    garment: npt.NDArray[np.bool_], *, full: float, garment_strength: float, band_px: float
) -> FloatImage:
    """Per-pixel denoising strength: ``garment_strength`` inside the garment eroded by ``band_px``, rising
    smoothly to ``full`` over the band and everywhere else (what the warp does not cover)."""
    inside = garment.astype(np.uint8)
    radius = max(0, round(band_px))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        inside = cv2.erode(inside, kernel)
    weight = inside.astype(np.float32)
    if radius:
        # The ramp lies inside the eroded core, so the band itself stays at full strength.
        weight = cv2.GaussianBlur(weight, (0, 0), max(0.5, radius / 3.0)) * weight
    low = min(garment_strength, full)
    return (full - (full - low) * weight).astype(np.float32)


def start_steps(strength: FloatImage, *, steps: int, full: float) -> npt.NDArray[np.int64]:
    """For each pixel of a strength map, the index (in the run's timesteps) of its first denoising step.

    diffusers runs ``int(steps x strength)`` steps from the end of the schedule; a pixel of strength ``s``
    starts where a run at ``s`` would: ``int(steps x full) - int(steps x s)`` steps into the run at ``full``.
    """
    run = int(steps * full)
    return np.clip(run - np.floor(steps * strength.astype(np.float64) + 1e-6).astype(np.int64), 0, run)


# ---------------------------------------------------------------------------------------------- paste-back


def paste_back(
    generated: RGBImage,
    init: RGBImage,
    warped_garment: npt.NDArray[np.uint8],
    garment: npt.NDArray[np.bool_],
    *,
    erode_px: float,
    max_delta_e: float,
) -> RGBImage:
    """The warped garment's own pixels inside ``garment`` eroded by ``erode_px`` (feathered), shaded like
    ``generated``: ``garment x blur(L_generated) / blur(L_init)``, where ``init`` is what generation started
    from. Where the blurred generation differs from the blurred init by more than ``max_delta_e`` (CIE76),
    e.g. an arm drawn over the torso, the warp is not trusted and ``generated`` stays."""
    radius = max(1, round(erode_px))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    core = cv2.erode(garment.astype(np.uint8), kernel).astype(np.float32)
    if not core.any():
        return generated
    alpha = cv2.GaussianBlur(core, (0, 0), max(0.5, PASTE_BACK_FEATHER * radius)) * core
    long_side = max(generated.shape[:2])

    shading_sigma = max(0.5, SHADING_SIGMA * long_side)
    generated_luma = cv2.cvtColor(generated, cv2.COLOR_RGB2GRAY).astype(np.float32) + SHADING_DARK_OFFSET
    init_luma = cv2.cvtColor(init, cv2.COLOR_RGB2GRAY).astype(np.float32) + SHADING_DARK_OFFSET
    shading = cv2.GaussianBlur(generated_luma, (0, 0), shading_sigma) / cv2.GaussianBlur(
        init_luma, (0, 0), shading_sigma
    )
    shading = np.clip(shading, *SHADING_RANGE)

    trust_sigma = max(0.5, TRUST_SIGMA * long_side)
    delta_e = np.linalg.norm(
        _lab(cv2.GaussianBlur(generated, (0, 0), trust_sigma))
        - _lab(cv2.GaussianBlur(init, (0, 0), trust_sigma)),
        axis=2,
    )
    # Full trust up to half the limit, none beyond it.
    trust = np.clip(2.0 - 2.0 * delta_e / max_delta_e, 0.0, 1.0)
    alpha = (alpha * trust)[..., None]

    shaded = warped_garment[..., :3].astype(np.float32) * shading[..., None]
    result = generated.astype(np.float32) * (1.0 - alpha) + shaded * alpha
    return np.clip(result + 0.5, 0, 255).astype(np.uint8)


def _lab(image: RGBImage) -> FloatImage:
    """CIE L*a*b* (L in 0..100) of an sRGB image."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def feathered(mask: npt.NDArray[np.bool_], grow_px: float) -> FloatImage:
    """``mask`` grown by ``grow_px`` and feathered outward: 1 on the mask, 0 beyond the grown edge."""
    radius = max(1, round(grow_px))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = cv2.dilate(mask.astype(np.uint8), kernel).astype(np.float32)
    soft = cv2.GaussianBlur(grown, (0, 0), max(0.5, radius / 2.0)) * grown
    return np.maximum(soft, mask.astype(np.float32))


def effective_steps(options: GenerationOptions) -> int:
    """diffusers runs int(steps x strength) denoising steps; make that at least one."""
    steps = options.steps
    while int(steps * options.strength) < 1:
        steps += 1
    return steps


# ---------------------------------------------------------------------------------------------- backend


class _DropFp32CastWarning(logging.Filter):
    """diffusers warns on every dtype ``.to()`` even when nothing must stay fp32 (an empty list), and its
    own ``force_upcast`` path casts the VAE on every call: drop that one message, keep the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "that should be kept in float32: []" not in record.getMessage()


class _StepHook:
    """``callback_on_step_end``: holds low-strength pixels at the noised init latents until their start
    step (the strength map), then stops the call if its caller has gone."""

    def __init__(
        self,
        starts: Any | None,
        image_latents: Any | None,
        noise: Any | None,
        deep_cache: DeepCache | None = None,
    ) -> None:
        self.starts = starts  # int tensor (1, 1, h, w) on the device, or None (no strength map)
        self.image_latents = image_latents
        self.noise = noise
        self.deep_cache = deep_cache

    def __call__(self, pipeline: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        raise_if_cancelled()
        report_progress(step + 1, pipeline.num_timesteps)
        if self.deep_cache is not None:
            self.deep_cache.step = step + 1
        if self.starts is not None:
            import torch

            # Pixels whose first step is still to come (index >= step + 1) go back to the init latents.
            upcoming = step + 1
            hold = self.starts >= upcoming
            if bool(hold.any()):
                total = pipeline.num_timesteps
                timesteps = pipeline.scheduler.timesteps
                begin = len(timesteps) - total
                if upcoming < total:
                    # After step i the scheduler stands at timesteps[i + 1]: noise the init latents to it.
                    target = pipeline.scheduler.add_noise(
                        self.image_latents, self.noise, timesteps[begin + upcoming : begin + upcoming + 1]
                    )
                else:
                    target = self.image_latents
                latents = tensors["latents"]
                tensors["latents"] = torch.where(hold, target.to(latents.dtype), latents)
        return tensors


class DeepCache:
    """DeepCache (Ma et al., CVPR 2024) for a diffusers SDXL UNet and its ControlNet(s).

    Every ``interval``-th denoising step runs in full and caches the outputs of the UNet's deep blocks
    (every down block but the first, the mid block, every up block but the last) and of the ControlNet; the
    steps in between recompute only the outermost down and up blocks (at full latent resolution, fed by
    the fresh skip connections) and reuse the rest. Training-free; costs quality at large intervals.
    """

    def __init__(self, unet: Any, controlnet: Any, interval: int) -> None:
        self.interval = interval
        self.step = 0
        self._cache: dict[int, tuple[Any, Any]] = {}
        for module in (*unet.down_blocks[1:], unet.mid_block, *unet.up_blocks[:-1], controlnet):
            self._wrap(module)

    def reset(self) -> None:
        self.step = 0
        self._cache.clear()

    @property
    def reusing(self) -> bool:
        return self.step % self.interval != 0

    def _wrap(self, module: Any) -> None:
        original = module.forward
        key = id(module)

        def forward(*args: Any, **kwargs: Any) -> Any:
            # A ControlNet's output is scaled by its conditioning scale, which control_guidance_end
            # changes during the run: reuse only an output computed at the same scale.
            scale = kwargs.get("conditioning_scale")
            cached = self._cache.get(key)
            if self.reusing and cached is not None and cached[0] == scale:
                return cached[1]
            output = original(*args, **kwargs)
            self._cache[key] = (scale, output)
            return output

        module.forward = forward


@dataclass
class _Canvas:
    """One generation's inputs on the canvas (all the same size, multiples of 64)."""

    init: RGBImage
    mask: Mask
    pose: RGBImage
    garment: npt.NDArray[np.bool_]
    edges: RGBImage | None
    reference: RGBImage | None


class FullInpaint:
    """SDXL inpainting + OpenPose ControlNet (+ IP-Adapter, + edges ControlNet) on CUDA or CPU."""

    def __init__(self, models: ModelSettings, *, max_long_side: int = MAX_LONG_SIDE) -> None:
        self.models = models
        self.max_long_side = max_long_side
        self._pipeline: Any = None
        self._device = "cpu"
        self._ip_adapter = False
        self._edges = False
        self._deep_cache: DeepCache | None = None
        self._lock = threading.Lock()  # one generation at a time: SDXL at 1024 px fills a GPU

    def setup(self) -> None:
        self.load()
        self.warm_up()

    def load(self) -> None:
        """Load the checkpoints onto the device (the part of ``setup()`` before the warm-up)."""
        import torch
        from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionXLControlNetInpaintPipeline

        logging.getLogger("diffusers.models.modeling_utils").addFilter(_DropFp32CastWarning())
        directories = model_registry.require_stage("inpaint", self.models)
        self._device = model_registry.resolve_device(self.models)
        dtype = getattr(torch, model_registry.compute_dtype(self.models, self._device))

        def controlnet(directory: Path) -> Any:
            return ControlNetModel.from_pretrained(
                directory, torch_dtype=dtype, variant=_variant(directory), local_files_only=True
            )

        controlnets: Any = controlnet(directories["controlnet"])
        self._edges = "controlnet_edges" in directories
        if self._edges:
            controlnets = [controlnets, controlnet(directories["controlnet_edges"])]
        extra: dict[str, Any] = {}
        if "vae" in directories:
            extra["vae"] = AutoencoderKL.from_pretrained(
                directories["vae"],
                torch_dtype=dtype,
                variant=_variant(directories["vae"]),
                local_files_only=True,
            )
        pipeline = StableDiffusionXLControlNetInpaintPipeline.from_pretrained(
            directories["sdxl"],
            controlnet=controlnets,
            torch_dtype=dtype,
            variant=_variant(directories["sdxl"]),
            local_files_only=True,
            # The invisible watermark needs an extra package (invisible-watermark) and alters pixels.
            add_watermarker=False,
            **extra,
        )
        self._ip_adapter = "ip_adapter" in directories
        if self._ip_adapter:
            directory = directories["ip_adapter"]
            weight = next(
                name for name in IP_ADAPTER_WEIGHTS if (directory / IP_ADAPTER_SUBFOLDER / name).is_file()
            )
            # A folder path with a "/" is taken relative to the repo root (the ViT-H encoder of h94's repo).
            pipeline.load_ip_adapter(
                str(directory),
                subfolder=IP_ADAPTER_SUBFOLDER,
                weight_name=weight,
                image_encoder_folder=IP_ADAPTER_IMAGE_ENCODER,
                local_files_only=True,
            )
            pipeline.set_ip_adapter_scale(self.models.ip_adapter_scale)
        if dtype == torch.float32:
            # Nothing to upcast: skip diffusers' per-call VAE dtype round trip.
            pipeline.vae.register_to_config(force_upcast=False)
        pipeline.set_progress_bar_config(disable=True)
        if self.models.cpu_offload and self._device == "cuda":
            pipeline.enable_model_cpu_offload()
        else:
            pipeline.to(self._device)
        if self.models.vae_tiling:
            pipeline.vae.enable_tiling()
        if self.models.attention_slicing:
            pipeline.enable_attention_slicing()
        if self.models.deep_cache_interval > 1:
            self._deep_cache = DeepCache(pipeline.unet, pipeline.controlnet, self.models.deep_cache_interval)
        self._pipeline = pipeline

    def warm_up(self) -> None:
        """One short generation, so the first request pays no one-off costs (and torch.compile compiles)."""
        # On a GPU, warm up at the production size so kernels are selected and memory is reserved for it.
        long_side = min(self.max_long_side, 1024) if self._device == "cuda" else 128
        height, width = long_side, (long_side * 3 // 4) // 8 * 8
        person = np.full((height, width, 3), 128, np.uint8)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
        garment = np.zeros((height, width, 4), np.uint8)
        garment[height // 4 : 2 * height // 3, width // 4 : 3 * width // 4] = (90, 90, 160, 255)
        self.run(
            InpaintInput(
                person=person,
                clothing_mask=mask,
                warped_garment=garment,
                pose_image=np.zeros_like(person),
                options=GenerationOptions(steps=2, strength=1.0),
            )
        )

    def run(self, inputs: InpaintInput, /) -> InpaintOutput:
        if self._pipeline is None:
            raise RuntimeError("FullInpaint.setup() must run before run()")
        # The lite backend's checks: both backends accept and refuse exactly the same requests.
        inputs.validate()
        settings = self.models
        options = inputs.options
        person = inputs.person
        mask = inputs.clothing_mask > 127
        mask_u8 = np.where(mask, 255, 0).astype(np.uint8)
        garment = (inputs.warped_garment[..., 3] > 127) & mask
        init = composite_garment(person, inputs.warped_garment, mask_u8)

        long_side = max(person.shape[:2])
        if settings.crop_to_mask:
            # The crop holds at least the feathered region the generation is pasted into.
            rows, cols = mask_crop(
                mask, settings.crop_margin, min_pad=math.ceil(2 * MASK_DILATE * long_side) + 2
            )
            geometry = generation_geometry(
                rows.stop - rows.start,
                cols.stop - cols.start,
                self.max_long_side,
                max_upscale=settings.crop_max_upscale,
            )
        else:
            rows, cols = slice(0, person.shape[0]), slice(0, person.shape[1])
            geometry = generation_geometry(person.shape[0], person.shape[1], self.max_long_side)
        warped_crop = inputs.warped_garment[rows, cols]
        canvas = _Canvas(
            init=to_canvas(init[rows, cols], geometry, border=cv2.BORDER_REPLICATE),
            mask=to_canvas(mask_u8[rows, cols], geometry, border=cv2.BORDER_CONSTANT),
            pose=to_canvas(inputs.pose_image[rows, cols], geometry, border=cv2.BORDER_CONSTANT),
            garment=to_canvas(garment[rows, cols].astype(np.uint8), geometry, border=cv2.BORDER_CONSTANT) > 0,
            edges=(
                to_canvas(garment_edges(warped_crop), geometry, border=cv2.BORDER_CONSTANT)
                if self._edges
                else None
            ),
            reference=garment_reference(inputs.warped_garment) if self._ip_adapter else None,
        )
        prompt = options.prompt.strip() or default_prompt(inputs.category)
        negative_prompt = options.negative_prompt.strip() or DEFAULT_NEGATIVE_PROMPT
        generated = from_canvas(
            self._generate(canvas, prompt=prompt, negative_prompt=negative_prompt, options=options), geometry
        )

        init_crop = init[rows, cols]
        if settings.paste_back:
            generated = paste_back(
                generated,
                init_crop,
                warped_crop,
                garment[rows, cols],
                erode_px=settings.paste_back_erode * long_side,
                max_delta_e=settings.paste_back_max_delta_e,
            )
        # The photo outside the (dilated, feathered) mask; the generation inside it.
        alpha = feathered(mask, MASK_DILATE * long_side)[rows, cols, None]
        image = person.copy()
        blended = generated.astype(np.float32) * alpha + person[rows, cols].astype(np.float32) * (1.0 - alpha)
        image[rows, cols] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return InpaintOutput(image=image)

    def _generate(
        self, canvas: _Canvas, *, prompt: str, negative_prompt: str, options: GenerationOptions
    ) -> RGBImage:
        import torch
        from PIL import Image

        settings = self.models
        canvas_height, canvas_width = canvas.init.shape[:2]
        steps = effective_steps(options)
        call: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "image": Image.fromarray(canvas.init),
            "mask_image": Image.fromarray(canvas.mask),
            "height": canvas_height,
            "width": canvas_width,
            "strength": options.strength,
            "num_inference_steps": steps,
            "guidance_scale": options.guidance_scale,
            "output_type": "np",
        }
        if self._edges:
            call["control_image"] = [Image.fromarray(canvas.pose), Image.fromarray(_required(canvas.edges))]
            call["controlnet_conditioning_scale"] = [CONTROLNET_SCALE, settings.edges_conditioning_scale]
            call["control_guidance_start"] = [0.0, 0.0]
            call["control_guidance_end"] = [1.0, settings.edges_guidance_end]
        else:
            call["control_image"] = Image.fromarray(canvas.pose)
            call["controlnet_conditioning_scale"] = CONTROLNET_SCALE
        if self._ip_adapter:
            from diffusers.image_processor import IPAdapterMaskProcessor

            call["ip_adapter_image"] = Image.fromarray(_required(canvas.reference))
            ip_mask = IPAdapterMaskProcessor().preprocess(
                [Image.fromarray(canvas.mask)], height=canvas_height, width=canvas_width
            )
            call["cross_attention_kwargs"] = {"ip_adapter_masks": [ip_mask]}

        out_of_memory = False
        with self._lock:
            # A CPU generator gives the same noise for a seed on every device.
            generator = torch.Generator(device="cpu").manual_seed(options.seed)
            try:
                with torch.inference_mode():
                    call["callback_on_step_end"] = self._step_hook(canvas, options, steps)
                    call["generator"] = generator
                    result = self._pipeline(**call)
            except torch.cuda.OutOfMemoryError as error:
                logger.warning("inpaint: CUDA out of memory at %dx%d: %s", canvas_width, canvas_height, error)
                out_of_memory = True
            if out_of_memory:
                # Outside the except block, so the traceback (and the tensors its frames hold) is released.
                call.clear()
                gc.collect()
                torch.cuda.empty_cache()
                raise StageOverloadedError(
                    f"inpaint: the GPU ran out of memory generating {canvas_width}x{canvas_height}; memory "
                    "was freed, retry the request (on small GPUs enable TRYON_MODELS__CPU_OFFLOAD or "
                    "TRYON_MODELS__VAE_TILING)"
                )
        image = result.images[0]
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def _step_hook(self, canvas: _Canvas, options: GenerationOptions, steps: int) -> _StepHook:
        """The step callback, with the strength map's tensors when some pixels start later than others."""
        import torch

        pipeline = self._pipeline
        settings = self.models
        band_px = settings.garment_edge_band * max(canvas.init.shape[:2])
        strength = strength_map(
            canvas.garment, full=options.strength, garment_strength=settings.garment_strength, band_px=band_px
        )
        latent_size = (canvas.init.shape[1] // LATENT_FACTOR, canvas.init.shape[0] // LATENT_FACTOR)
        latent_strength = cv2.resize(strength, latent_size, interpolation=cv2.INTER_AREA)
        starts = start_steps(latent_strength, steps=steps, full=options.strength)
        if self._deep_cache is not None:
            self._deep_cache.reset()
        if not starts.any() or getattr(pipeline.scheduler, "order", 1) != 1:
            return _StepHook(None, None, None, self._deep_cache)
        device = pipeline._execution_device
        image = pipeline.image_processor.preprocess(
            canvas.init[None].astype(np.float32) / 255.0,
            height=canvas.init.shape[0],
            width=canvas.init.shape[1],
        ).to(device=device, dtype=pipeline.vae.dtype)
        # The pipeline's own encoder call (handles the fp16 VAE's force_upcast); a separate seed stream
        # from the pipeline's noise.
        generator = torch.Generator(device="cpu").manual_seed((options.seed + 1) % 2**63)
        image_latents = pipeline._encode_vae_image(image=image, generator=generator)
        noise = torch.randn(image_latents.shape, generator=generator, dtype=torch.float32).to(device)
        return _StepHook(
            torch.from_numpy(starts)[None, None].to(device),
            image_latents.to(device=device, dtype=torch.float32),
            noise,
            self._deep_cache,
        )

    def info(self) -> BackendInfo:
        device = self._device
        if self._pipeline is not None:
            device = str(self._pipeline._execution_device)
        models = [
            ModelInfo(name="sdxl", source=self.models.sdxl_inpaint_model),
            ModelInfo(name="controlnet", source=self.models.controlnet_openpose_model),
        ]
        if self.models.vae_model:
            models.append(ModelInfo(name="vae", source=self.models.vae_model))
        if self.models.ip_adapter_model:
            models.append(ModelInfo(name="ip_adapter", source=self.models.ip_adapter_model))
        if self.models.controlnet_edges_model:
            models.append(ModelInfo(name="controlnet_edges", source=self.models.controlnet_edges_model))
        return BackendInfo(stage="inpaint", backend="full", device=device, models=tuple(models))


def _required(image: RGBImage | None) -> RGBImage:
    """A canvas layer that the enabled option guarantees (edges with the edges ControlNet, etc.)."""
    if image is None:
        raise RuntimeError("inpaint: a conditioning layer the pipeline was built with is missing")
    return image


def _variant(directory: Path) -> str | None:
    """Load the fp16 weight files when the checkpoint has them (``tryon models pull`` fetches only those)."""
    return "fp16" if any(directory.rglob("*.fp16.safetensors")) else None
