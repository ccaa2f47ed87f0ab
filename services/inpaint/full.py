"""Full inpainting: SDXL inpainting + OpenPose ControlNet (diffusers).

``StableDiffusionXLControlNetInpaintPipeline`` with the SDXL *inpainting* checkpoint (its UNet takes the
masked image and mask as 5 extra input channels, so the region is generated in context rather than pasted)
and an OpenPose ControlNet conditioned on the pose image, so the generated body follows the person's pose.
The warped garment is composited into the masked area of the init image: with ``strength`` < 1 its colours
and layout survive into the result; at the default 0.99 the prompt (which names the garment's colour and
kind, see :func:`default_prompt`) carries it.

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

from services.inpaint.lite import validate_inputs
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

#: SDXL's native resolution: the pipeline hands over photos at long side 1024 and they are generated so.
MAX_LONG_SIDE = 1024
#: SDXL was trained on sizes in multiples of 64 (and its UNet downsamples latents 4x): pad up to one.
SIZE_MULTIPLE = 64
CONTROLNET_SCALE = 1.0
GARMENT_NOUNS = {
    GarmentCategory.UPPER_BODY: "top",
    GarmentCategory.LOWER_BODY: "bottoms",
    GarmentCategory.DRESS: "dress",
}
DEFAULT_NEGATIVE_PROMPT = (
    "deformed, distorted, disfigured, bad anatomy, extra limbs, extra fingers, blurry, low quality, "
    "watermark, text, logo"
)


@dataclass(frozen=True)
class Geometry:
    """How a photo maps onto the generation canvas: scaled by ``scale``, then padded to ``canvas``."""

    height: int
    width: int
    scaled: tuple[int, int]  # (height, width) after scaling
    canvas: tuple[int, int]  # (height, width), multiples of SIZE_MULTIPLE

    @property
    def scale(self) -> float:
        return self.scaled[0] / self.height


def generation_geometry(height: int, width: int, max_long_side: int = MAX_LONG_SIDE) -> Geometry:
    scale = min(1.0, max_long_side / max(height, width))
    scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
    canvas = tuple(math.ceil(side / SIZE_MULTIPLE) * SIZE_MULTIPLE for side in scaled)
    return Geometry(height=height, width=width, scaled=scaled, canvas=(canvas[0], canvas[1]))


def to_canvas(image: npt.NDArray[np.uint8], geometry: Geometry, *, border: int) -> npt.NDArray[np.uint8]:
    """Scale ``image`` to the generation size and pad it right/bottom to the canvas."""
    if geometry.scaled != (geometry.height, geometry.width):
        interpolation = cv2.INTER_NEAREST if image.ndim == 2 else cv2.INTER_AREA
        image = cv2.resize(image, geometry.scaled[::-1], interpolation=interpolation)
    pad_bottom = geometry.canvas[0] - geometry.scaled[0]
    pad_right = geometry.canvas[1] - geometry.scaled[1]
    if pad_bottom or pad_right:
        image = cv2.copyMakeBorder(image, 0, pad_bottom, 0, pad_right, border, value=0)
    return image


def from_canvas(image: npt.NDArray[np.uint8], geometry: Geometry) -> npt.NDArray[np.uint8]:
    """Crop the padding off and scale back to the photo's exact size."""
    image = image[: geometry.scaled[0], : geometry.scaled[1]]
    if geometry.scaled != (geometry.height, geometry.width):
        image = cv2.resize(image, (geometry.width, geometry.height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(image)


def composite_garment(person: RGBImage, warped_garment: npt.NDArray[np.uint8], mask: Mask) -> RGBImage:
    """The init image: the warped garment laid over the person inside the clothing mask."""
    alpha = (warped_garment[..., 3:4].astype(np.float32) / 255.0) * (mask[..., None] > 0)
    blended = person.astype(np.float32) * (1.0 - alpha) + warped_garment[..., :3].astype(np.float32) * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def colour_name(rgb: npt.NDArray[np.uint8]) -> str:
    """A plain English name for an RGB colour (what a prompt can say about a garment)."""
    hsv = cv2.cvtColor(np.asarray(rgb, dtype=np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2HSV)[0, 0]
    hue, saturation, value = int(hsv[0]) * 2, int(hsv[1]), int(hsv[2])
    if value < 50:
        return "black"
    if saturation < 40:
        return "white" if value > 200 else "light grey" if value > 140 else "grey"
    if hue < 15 or hue >= 345:
        name = "red"
    elif hue < 40:
        name = "brown" if value < 160 else "orange"
    elif hue < 70:
        name = "yellow"
    elif hue < 160:
        name = "green"
    elif hue < 200:
        name = "teal"
    elif hue < 255:
        name = "navy blue" if value < 110 else "blue"
    elif hue < 290:
        name = "purple"
    else:
        name = "pink"
    return f"dark {name}" if value < 90 and name not in ("navy blue", "brown") else name


def default_prompt(warped_garment: npt.NDArray[np.uint8], category: GarmentCategory) -> str:
    """A garment-aware prompt: the garment's dominant colour and kind."""
    opaque = warped_garment[..., 3] > 127
    noun = GARMENT_NOUNS[category]
    if opaque.any():
        noun = f"{colour_name(np.median(warped_garment[opaque][:, :3], axis=0).astype(np.uint8))} {noun}"
    return (
        f"a photo of a person wearing a {noun}, realistic fabric texture, natural fit and folds, "
        "high quality, detailed"
    )


def effective_steps(options: GenerationOptions) -> int:
    """diffusers runs int(steps x strength) denoising steps; make that at least one."""
    steps = options.steps
    while int(steps * options.strength) < 1:
        steps += 1
    return steps


class _DropFp32CastWarning(logging.Filter):
    """diffusers warns on every dtype ``.to()`` even when nothing must stay fp32 (an empty list), and its
    own ``force_upcast`` path casts the VAE on every call: drop that one message, keep the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "that should be kept in float32: []" not in record.getMessage()


def _stop_if_cancelled(pipeline: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    raise_if_cancelled()
    report_progress(step + 1, pipeline.num_timesteps)
    return tensors


class FullInpaint:
    """SDXL inpainting + OpenPose ControlNet on CUDA (fp16/bf16) or CPU (fp32)."""

    def __init__(self, models: ModelSettings, *, max_long_side: int = MAX_LONG_SIDE) -> None:
        self.models = models
        self.max_long_side = max_long_side
        self._pipeline: Any = None
        self._device = "cpu"
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

        controlnet = ControlNetModel.from_pretrained(
            directories["controlnet"],
            torch_dtype=dtype,
            variant=_variant(directories["controlnet"]),
            local_files_only=True,
        )
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
            controlnet=controlnet,
            torch_dtype=dtype,
            variant=_variant(directories["sdxl"]),
            local_files_only=True,
            # The invisible watermark needs an extra package (invisible-watermark) and alters pixels.
            add_watermarker=False,
            **extra,
        )
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
        validate_inputs(inputs)
        options = inputs.options
        person = inputs.person
        height, width = person.shape[:2]
        geometry = generation_geometry(height, width, self.max_long_side)
        mask = np.where(inputs.clothing_mask > 127, 255, 0).astype(np.uint8)
        init = composite_garment(person, inputs.warped_garment, mask)
        canvas_init = to_canvas(init, geometry, border=cv2.BORDER_REPLICATE)
        canvas_mask = to_canvas(mask, geometry, border=cv2.BORDER_CONSTANT)
        canvas_pose = to_canvas(inputs.pose_image, geometry, border=cv2.BORDER_CONSTANT)
        prompt = options.prompt.strip() or default_prompt(inputs.warped_garment, inputs.category)
        negative_prompt = options.negative_prompt.strip() or DEFAULT_NEGATIVE_PROMPT
        generated = self._generate(
            init=canvas_init,
            mask=canvas_mask,
            pose=canvas_pose,
            prompt=prompt,
            negative_prompt=negative_prompt,
            options=options,
        )
        return InpaintOutput(image=from_canvas(generated, geometry))

    def _generate(
        self,
        *,
        init: RGBImage,
        mask: Mask,
        pose: RGBImage,
        prompt: str,
        negative_prompt: str,
        options: GenerationOptions,
    ) -> RGBImage:
        import torch
        from PIL import Image

        canvas_height, canvas_width = init.shape[:2]
        out_of_memory = False
        with self._lock:
            # A CPU generator gives the same noise for a seed on every device.
            generator = torch.Generator(device="cpu").manual_seed(options.seed)
            try:
                with torch.inference_mode():
                    result = self._pipeline(
                        prompt=prompt,
                        negative_prompt=negative_prompt,
                        image=Image.fromarray(init),
                        mask_image=Image.fromarray(mask),
                        control_image=Image.fromarray(pose),
                        height=canvas_height,
                        width=canvas_width,
                        strength=options.strength,
                        num_inference_steps=effective_steps(options),
                        guidance_scale=options.guidance_scale,
                        controlnet_conditioning_scale=CONTROLNET_SCALE,
                        generator=generator,
                        output_type="np",
                        # Between denoising steps: stop when the caller has gone (expired deadline).
                        callback_on_step_end=_stop_if_cancelled,
                    )
            except torch.cuda.OutOfMemoryError as error:
                logger.warning("inpaint: CUDA out of memory at %dx%d: %s", canvas_width, canvas_height, error)
                out_of_memory = True
            if out_of_memory:
                # Outside the except block, so the traceback (and the tensors its frames hold) is released.
                gc.collect()
                torch.cuda.empty_cache()
                raise StageOverloadedError(
                    f"inpaint: the GPU ran out of memory generating {canvas_width}x{canvas_height}; memory "
                    "was freed, retry the request (on small GPUs enable TRYON_MODELS__CPU_OFFLOAD or "
                    "TRYON_MODELS__VAE_TILING)"
                )
        image = result.images[0]
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)

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
        return BackendInfo(stage="inpaint", backend="full", device=device, models=tuple(models))


def _variant(directory: Path) -> str | None:
    """Load the fp16 weight files when the checkpoint has them (``tryon models pull`` fetches only those)."""
    return "fp16" if any(directory.rglob("*.fp16.safetensors")) else None
