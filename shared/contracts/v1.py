"""The public API's bodies (FASHN-compatible shapes) as pydantic models: one definition that
validates requests, builds answers and generates the /v1 part of the OpenAPI document.

Every limit and enum of a run's inputs is the try-on contract's (`tryon`: samples, seed,
output formats, garment photo types, modes; `fields`: categories, here under FASHN's names).
Model names: FASHN's try-on names are aliases of this deployment's default model; Proteus's
own names pick a model explicitly (see `MODEL_NAMES`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, Field

from shared.contracts.base import Contract, show
from shared.contracts.fields import CATEGORIES_OR_AUTO, CategoryOrAutoName
from shared.contracts.tryon import MODELS as PROTEUS_MODELS
from shared.contracts.tryon import GarmentPhotoType, Mode, NumSamples, OutputFormat, Seed, SegmentationFree
from shared.errors import BadRequest

MAX_URL: Final = 2048
# FASHN's try-on model names: the deployment's default model (WEAVE_DEFAULT_MODEL; a CatVTON
# default takes its variant from segmentation_free). Proteus's own names pick one explicitly.
FASHN_ALIASES: tuple[str, ...] = ("tryon-v1.6", "tryon-v1.5", "tryon-max")
MODEL_NAMES: tuple[str, ...] = (*FASHN_ALIASES, *PROTEUS_MODELS)
# FASHN's categories -> Proteus's (fields.CATEGORIES_OR_AUTO).
FashnCategoryName = Literal["auto", "tops", "bottoms", "one-pieces"]
CATEGORY: Final[dict[str, CategoryOrAutoName]] = {
    "auto": "auto",
    "tops": "upper",
    "bottoms": "lower",
    "one-pieces": "overall",
}
assert tuple(CATEGORY) == get_args(FashnCategoryName), "CATEGORY and FashnCategoryName must name the same categories"
assert set(CATEGORY.values()) == set(CATEGORIES_OR_AUTO), "every Proteus category needs a FASHN name"
FashnCategory = Annotated[
    FashnCategoryName,
    Field(description="FASHN's names of Proteus's categories: " + ", ".join(f"{k} ({v})" for k, v in CATEGORY.items())),
]
ModerationLevelName = Literal["conservative", "permissive", "none"]
ModerationLevel = Annotated[
    ModerationLevelName,
    Field(
        description="Accepted for FASHN compatibility; Proteus runs no content moderation model, so every level "
        "does the same: the deployment's safety checker on the result when WEAVE_SAFETY_CHECK is on."
    ),
]
Status = Literal["starting", "in_queue", "processing", "completed", "failed", "canceled"]
ErrorName = Literal[
    "ImageLoadError",
    "ContentModerationError",
    "PoseError",
    "InputValidationError",
    "PipelineError",
    "InternalServerError",
]


class _Strict(Contract):
    """A request body: unknown fields refused, no type coercion (shared/contracts/base.py)."""


class TryOnInputs(_Strict):
    """`inputs` of a try-on run. Images: a storage key from POST /images/presign, a data: URL
    (base64), or an https URL the service fetches itself."""

    model_image: str = Field(min_length=1, description="The person: storage key, data: URL or https URL.")
    garment_image: str = Field(min_length=1, description="The garment: storage key, data: URL or https URL.")
    category: FashnCategory = "auto"
    mode: Mode = "balanced"
    garment_photo_type: GarmentPhotoType = "auto"
    moderation_level: ModerationLevel = "permissive"
    num_samples: NumSamples = 1
    seed: Seed | None = None
    output_format: OutputFormat = "png"
    return_base64: bool = Field(False, description="output as data: URLs instead of links.")
    segmentation_free: SegmentationFree = Field(
        True,
        description="true: no clothing segmentation (CatVTON: the mask-free "
        "model; FASHN: the person photo as it is); false: segmented.",
    )


class RunRequest(_Strict):
    model_name: str = Field(
        description="A FASHN try-on name (tryon-v1.6, tryon-v1.5, tryon-max: this deployment's "
        "default model) or a Proteus model: " + ", ".join(PROTEUS_MODELS) + "."
    )
    inputs: TryOnInputs
    webhook_url: str | None = Field(
        None, max_length=MAX_URL, description="POSTed the status body when the run ends (signed)."
    )


class RunResponse(BaseModel):
    id: str
    error: str | None = None


class PredictionError(BaseModel):
    name: ErrorName
    message: str


class StatusResponse(BaseModel):
    id: str
    status: Status
    output: list[str] | None = Field(None, description="URLs, or data: URLs with return_base64.")
    error: PredictionError | None = None
    model_name: str | None = None
    created_at: str | None = None
    seeds: list[int] | None = Field(None, description="The seed of each output.")


class CancelResponse(BaseModel):
    id: str
    status: Status


class Delivery(BaseModel):
    id: str = Field(description="The webhook-id header of this message (one per job).")
    prediction_id: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str | None
    delivered_at: str | None


class Deliveries(BaseModel):
    deliveries: list[Delivery]


def parse_run(body: dict[str, Any]) -> RunRequest:
    """The checked request; BadRequest naming the first bad field (inputs.category, ...) and its value."""
    name = body.get("model_name")
    if isinstance(name, str) and name not in MODEL_NAMES:
        raise BadRequest(f"model_name must be one of {', '.join(MODEL_NAMES)}, got {show(name)}", field="model_name")
    request = RunRequest.parse(body)
    if request.webhook_url is not None:
        check_webhook_url(request.webhook_url, "webhook_url")
    return request


def check_webhook_url(url: Any, field: str) -> str:
    """A plausible http(s) URL (where it may point is checked when it is called)."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > MAX_URL:
        raise BadRequest(f"{field} must be an https URL of at most {MAX_URL} characters, got {show(url)}", field=field)
    return url


# -- keys and webhook settings (managed with a session, never with a key) ----------------


class ApiKeyCreate(_Strict):
    name: str | None = Field(None, max_length=100)
    rate_limit: str | None = Field(None, max_length=64, description="e.g. '60 per minute'; default API_KEY_RATE_LIMIT.")


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to tell keys apart.")
    rate_limit: str
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]


class WebhookSettingsUpdate(_Strict):
    webhook_url: str | None = Field(
        None, max_length=MAX_URL, description="Default for runs without webhook_url; null or empty to remove it."
    )


class WebhookSettings(BaseModel):
    webhook_url: str | None
    secret: str = Field(description="The Standard Webhooks signing secret (whsec_...).")
