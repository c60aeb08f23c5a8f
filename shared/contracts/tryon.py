"""The try-on settings: each limit, default and enum of a try-on, defined here once.

The REST body (`rest.WeaveJobRequest`), the events (`events.TryonRequested`,
`events.WeaveRequested`, tailor's `then_weave`), the generated JSON Schemas and OpenAPI
document, and the weave pipeline's `check_inputs` all read these. Torch-free.

Adding an optional try-on setting: add a field to `TryOnOptions` (below; and a required one to
`events.WeaveRequested` if weave must always get it), then run `make schemas`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Final, Literal, get_args

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shared.contracts.base import Contract

CATEGORY_FOR_AUTO: Final = "upper"  # what "auto" means where nothing has classified the garment
DEFAULT_REQUEST_CATEGORY: Final = "auto"  # a request that names no category lets tailor classify it

DEFAULT_STEPS: Final = 50
DEFAULT_GUIDANCE: Final = 2.5
DEFAULT_HEIGHT: Final = 1024
DEFAULT_WIDTH: Final = 768
DEFAULT_REPAINT: Final = False
DEFAULT_GARMENT_PHOTO_TYPE: Final = "auto"  # fashn-vton-1.5: tailor decides from its parsing
DEFAULT_SEGMENTATION_FREE: Final = True  # fashn-vton-1.5: keep the person photo as it is

STEPS_RANGE: Final = (1, 150)
GUIDANCE_RANGE: Final = (0.0, 20.0)
SIZE_MULTIPLE: Final = 64  # height and width: multiples of this ...
MAX_SIDE: Final = 2048  # ... from SIZE_MULTIPLE up to this
MAX_SEED: Final = 2**32 - 1

VariantName = Literal["maskfree", "mask"]
VARIANTS: Final[tuple[str, ...]] = get_args(VariantName)

PresetName = Literal["default", "fast"]
# Named settings a request may ask for instead of numbers (its own steps / guidance win).
# "default" is the published setting; "fast" runs 2.5x fewer denoising steps.
PRESETS: Final[dict[str, dict[str, int | float]]] = {
    "default": {"steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE},
    "fast": {"steps": 20, "guidance": DEFAULT_GUIDANCE},
}
assert set(PRESETS) == set(get_args(PresetName)), "PRESETS and PresetName must name the same presets"

Steps = Annotated[
    int, Field(ge=STEPS_RANGE[0], le=STEPS_RANGE[1], description=f"Denoising steps (CatVTON default {DEFAULT_STEPS}).")
]
Guidance = Annotated[
    float,
    Field(
        ge=GUIDANCE_RANGE[0],
        le=GUIDANCE_RANGE[1],
        description=f"Classifier-free guidance scale (CatVTON default {DEFAULT_GUIDANCE}).",
    ),
]
Seed = Annotated[
    int, Field(ge=0, le=MAX_SEED, description="Random seed; the same seed and inputs give the same image.")
]
Variant = Annotated[
    VariantName,
    Field(description="maskfree: CatVTON mask-free model; mask: the masked model, which needs mask_key."),
]
Preset = Annotated[
    PresetName,
    Field(
        description="default: the model's steps (CatVTON 50, FASHN 30); fast: 20 steps. Explicit steps / guidance win."
    ),
]
Height = Annotated[
    int,
    Field(
        ge=SIZE_MULTIPLE,
        le=MAX_SIDE,
        multiple_of=SIZE_MULTIPLE,
        description=f"Output height in pixels: a multiple of {SIZE_MULTIPLE} from {SIZE_MULTIPLE} to {MAX_SIDE} "
        f"(default {DEFAULT_HEIGHT}).",
    ),
]
Width = Annotated[
    int,
    Field(
        ge=SIZE_MULTIPLE,
        le=MAX_SIDE,
        multiple_of=SIZE_MULTIPLE,
        description=f"Output width in pixels: a multiple of {SIZE_MULTIPLE} from {SIZE_MULTIPLE} to {MAX_SIDE} "
        f"(default {DEFAULT_WIDTH}).",
    ),
]
Repaint = Annotated[bool, Field(description="Paste the untouched person pixels back outside the mask.")]


def default_seed(job_id: str) -> int:
    """The seed of a job that asked for none: random per job, the same on every redelivery."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


# -- the models weave can serve, by name --------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One try-on model a weave instance may load: where it comes from and under what licence.

    `commercial` is True when every component it runs may be used commercially; `parser_free`
    names the FASHN combinations that run without the non-commercial human parser.
    """

    name: str
    family: str  # catvton | fashn
    source: str
    licence: str
    commercial: bool
    steps: int
    guidance: float
    fast_steps: int
    steps_range: tuple[int, int]
    guidance_range: tuple[float, float]
    note: str = ""


FASHN_MODEL: Final = "fashn-vton-1.5"
MODELS: Final[dict[str, ModelSpec]] = {
    "catvton-maskfree": ModelSpec(
        "catvton-maskfree",
        "catvton",
        "zhengchong/CatVTON-MaskFree (gated) on timbrooks/instruct-pix2pix",
        "CC BY-NC-SA 4.0 (non-commercial)",
        False,
        DEFAULT_STEPS,
        DEFAULT_GUIDANCE,
        20,
        STEPS_RANGE,
        GUIDANCE_RANGE,
        "needs no mask",
    ),
    "catvton-mask": ModelSpec(
        "catvton-mask",
        "catvton",
        "zhengchong/CatVTON on booksforcharlie/stable-diffusion-inpainting",
        "CC BY-NC-SA 4.0 (non-commercial)",
        False,
        DEFAULT_STEPS,
        DEFAULT_GUIDANCE,
        20,
        STEPS_RANGE,
        GUIDANCE_RANGE,
        "repaints a mask (tailor makes one when none is sent)",
    ),
    FASHN_MODEL: ModelSpec(
        FASHN_MODEL,
        "fashn",
        "fashn-ai/fashn-vton-1.5 + fashn-ai/DWPose (+ fashn-ai/fashn-human-parser)",
        "Apache-2.0 (network, DWPose); the human parser: NVIDIA SegFormer licence (non-commercial)",
        True,
        30,
        1.5,
        20,
        (1, 100),
        (0.0, 10.0),
        "commercial setting: only segmentation_free with a flat-lay garment (no parser)",
    ),
}
CATVTON_VARIANT_MODELS: Final = {"maskfree": "catvton-maskfree", "mask": "catvton-mask"}
GarmentPhotoTypeName = Literal["auto", "model", "flat-lay"]
GARMENT_PHOTO_TYPES: Final[tuple[str, ...]] = get_args(GarmentPhotoTypeName)
# The components behind the `commercial` setting, for the README and /health.
COMPONENT_LICENCES: Final[dict[str, str]] = {
    "FASHN VTON v1.5 network": "Apache-2.0",
    "DWPose (yolox_l, dw-ll_ucoco_384)": "Apache-2.0",
    "FASHN human parser (SegFormer-B4)": "NVIDIA Source Code License for SegFormer: non-commercial",
    "tailor's parser (segformer_b2_clothes)": "NVIDIA Source Code License for SegFormer: non-commercial",
    "CatVTON weights": "CC BY-NC-SA 4.0: non-commercial",
}


def model_defaults(model: str) -> dict[str, int | float]:
    """The steps and guidance a request for `model` gets when it names neither."""
    spec = MODELS[model]
    return {"steps": spec.steps, "guidance": spec.guidance}


def preset_for(model: str, preset: str) -> dict[str, int | float]:
    """A named preset's steps and guidance for `model` ("fast" runs fewer steps)."""
    spec = MODELS[model]
    steps = spec.fast_steps if preset == "fast" else spec.steps
    return {"steps": steps, "guidance": spec.guidance}


def resolve_model(model: str | None, variant: str | None, has_mask: bool, default: str) -> str:
    """The model a try-on runs: the one it names, else its CatVTON variant, else the default
    (a CatVTON default with a mask means the mask-based CatVTON, as before models had names)."""
    if model:
        return model
    if variant in CATVTON_VARIANT_MODELS:
        return CATVTON_VARIANT_MODELS[variant]
    if has_mask and MODELS[default].family == "catvton":
        return CATVTON_VARIANT_MODELS["mask"]
    return default


def parser_free(model: str, garment_photo_type: str | None, segmentation_free: bool | None) -> bool:
    """Whether a try-on needs no non-commercial parser (FASHN, flat-lay, segmentation-free)."""
    return (
        model == FASHN_MODEL
        and (garment_photo_type or DEFAULT_GARMENT_PHOTO_TYPE) in ("flat-lay", "auto")
        and (DEFAULT_SEGMENTATION_FREE if segmentation_free is None else segmentation_free)
    )


ModelName = Literal["catvton-maskfree", "catvton-mask", "fashn-vton-1.5"]
assert set(get_args(ModelName)) == set(MODELS), "ModelName and MODELS must name the same models"
TryOnModel = Annotated[
    ModelName,
    Field(
        description=(
            "The try-on model by name (README, Models and licences); absent: the deployment's WEAVE_DEFAULT_MODEL "
            "(catvton-* models follow variant and mask_key as before). A model this deployment does not serve is a 400 "
            "model_not_loaded."
        )
    ),
]
GarmentPhotoType = Annotated[
    GarmentPhotoTypeName,
    Field(
        description=(
            "fashn-vton-1.5: 'model' (the garment is worn by someone), 'flat-lay' (a product shot), or 'auto' "
            "(tailor decides from its parsing)."
        )
    ),
]
SegmentationFree = Annotated[
    bool,
    Field(
        description=(
            "fashn-vton-1.5: true (default) keeps the person photo as it is; false masks the clothing first (needs the "
            "non-commercial human parser)."
        )
    ),
]

# The public API (/v1): how many images one run may render, and the formats a result may be stored in.
MAX_SAMPLES: Final = 4
OutputFormatName = Literal["png", "jpeg", "webp"]
OUTPUT_FORMATS: Final[tuple[str, ...]] = get_args(OutputFormatName)
NumSamples = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_SAMPLES,
        description=("How many images to render (seeds seed, seed+1, ...) in one batched model call; default 1."),
    ),
]
OutputFormat = Annotated[OutputFormatName, Field(description=("The stored result's image format; default png."))]
# The public API's `mode` (FASHN's names), turned into steps and guidance by `api_mode`.
ModeName = Literal["performance", "balanced", "quality"]
MODES: Final[tuple[str, ...]] = get_args(ModeName)
Mode = Annotated[
    ModeName,
    Field(description="performance: the model's fast preset; quality: its published steps; balanced: half-way."),
]


def api_mode(model: str, mode: str) -> dict[str, int | float]:
    """The public API's `mode` (FASHN's names) for `model`: performance is its fast preset,
    quality its published setting, balanced half-way between them."""
    spec = MODELS[model]
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    steps = {"performance": spec.fast_steps, "quality": spec.steps}.get(mode, (spec.fast_steps + spec.steps) // 2)
    return {"steps": steps, "guidance": spec.guidance}


class TryOnOptions(Contract):
    """The try-on settings a request may leave out (enqueue fills them in)."""

    steps: Steps | SkipJsonSchema[None] = None
    guidance: Guidance | SkipJsonSchema[None] = None
    seed: Seed | SkipJsonSchema[None] = None
    variant: Variant | SkipJsonSchema[None] = None
    height: Height | SkipJsonSchema[None] = None
    width: Width | SkipJsonSchema[None] = None
    repaint: Repaint | SkipJsonSchema[None] = None
    model: TryOnModel | SkipJsonSchema[None] = None
    garment_photo_type: GarmentPhotoType | SkipJsonSchema[None] = None
    segmentation_free: SegmentationFree | SkipJsonSchema[None] = None
    num_samples: NumSamples | SkipJsonSchema[None] = None
    output_format: OutputFormat | SkipJsonSchema[None] = None
