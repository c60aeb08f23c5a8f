"""The try-on settings a request may carry: the published CatVTON defaults and their limits.

Torch-free, so the gateway and enqueue check requests with the same numbers the weave
pipeline enforces (the event schemas in cloudevents-schemas/ state them too).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CATEGORIES: Final[tuple[str, ...]] = ("upper", "lower", "overall")

DEFAULT_STEPS: Final = 50
DEFAULT_GUIDANCE: Final = 2.5
# Named settings a request may ask for instead of numbers (its own steps / guidance win).
# "default" is the published setting; "fast" runs 2.5x fewer denoising steps.
PRESETS: Final[dict[str, dict[str, int | float]]] = {
    "default": {"steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE},
    "fast": {"steps": 20, "guidance": DEFAULT_GUIDANCE},
}
DEFAULT_HEIGHT: Final = 1024
DEFAULT_WIDTH: Final = 768

STEPS_RANGE: Final = (1, 150)
GUIDANCE_RANGE: Final = (0.0, 20.0)
SIZE_MULTIPLE: Final = 64  # height and width: multiples of this ...
MAX_SIDE: Final = 2048  # ... from SIZE_MULTIPLE up to this


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
        "catvton-maskfree", "catvton", "zhengchong/CatVTON-MaskFree (gated) on timbrooks/instruct-pix2pix",
        "CC BY-NC-SA 4.0 (non-commercial)", False, DEFAULT_STEPS, DEFAULT_GUIDANCE, 20, STEPS_RANGE, GUIDANCE_RANGE,
        "needs no mask"),
    "catvton-mask": ModelSpec(
        "catvton-mask", "catvton", "zhengchong/CatVTON on booksforcharlie/stable-diffusion-inpainting",
        "CC BY-NC-SA 4.0 (non-commercial)", False, DEFAULT_STEPS, DEFAULT_GUIDANCE, 20, STEPS_RANGE, GUIDANCE_RANGE,
        "repaints a mask (tailor makes one when none is sent)"),
    FASHN_MODEL: ModelSpec(
        FASHN_MODEL, "fashn", "fashn-ai/fashn-vton-1.5 + fashn-ai/DWPose (+ fashn-ai/fashn-human-parser)",
        "Apache-2.0 (network, DWPose); the human parser: NVIDIA SegFormer licence (non-commercial)", True,
        30, 1.5, 20, (1, 100), (0.0, 10.0),
        "commercial setting: only segmentation_free with a flat-lay garment (no parser)"),
}
CATVTON_VARIANT_MODELS: Final = {"maskfree": "catvton-maskfree", "mask": "catvton-mask"}
GARMENT_PHOTO_TYPES: Final = ("auto", "model", "flat-lay")
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
    return (model == FASHN_MODEL and (garment_photo_type or "auto") in ("flat-lay", "auto")
            and segmentation_free is not False)
