"""From a `weave.requested` event to a pipeline request, and from results to the reply's fields.

- `model_name(data, default_model)`: the event's model (older events: by variant / mask).
- `request_from_event(data, settings, storage)`: the pipeline request of that model, images
  read from storage, every setting from the event (enqueue resolved them).
- `sample_keys(data)`, `result_fields(keys)`, `json_safe(metadata)`: where the samples go
  and how the completion names them; FLAGGED_MESSAGE and JobCanceled: how a render that
  produced nothing to store is answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.weave.fashn.pipeline import FashnRequest
from functions.weave.models import Request
from functions.weave.request import TryOnRequest
from shared.config import Settings
from shared.contracts.events import WeaveRequested
from shared.contracts.tryon import (
    CATEGORY_FOR_AUTO,
    CATVTON_VARIANT_MODELS,
    DEFAULT_GARMENT_PHOTO_TYPE,
    DEFAULT_SEGMENTATION_FREE,
    FASHN_MODEL,
)
from shared.contracts.tryon import resolve_model as model_for_request
from shared.errors import BadRequest, ClientError
from shared.storage.base import Storage
from shared.uploads import result_key

FLAGGED_MESSAGE = (
    "The safety checker flagged this result, so it was not saved. It sometimes flags harmless "
    "images: try again with another seed or photo."
)


def model_name(data: Mapping[str, Any], default_model: str) -> str:
    """The event's model; events without one (older producers) follow variant / mask as before."""
    return str(
        data.get("model") or model_for_request(None, data.get("variant"), bool(data.get("mask_key")), default_model)
    )


def request_from_event(data: Mapping[str, Any], settings: Settings, storage: Storage) -> Request:
    """The pipeline request of the event's model: images from storage, every setting from the
    event (enqueue resolved them; the event was validated on receipt)."""
    asked = WeaveRequested.parse(data)
    model = model_name(data, settings.weave_default_model)
    person = storage.get(asked.person_key)
    garment = storage.get(asked.garment_key)
    category = CATEGORY_FOR_AUTO if asked.category == "auto" else asked.category
    options = {"steps": asked.steps, "guidance": asked.guidance, "seed": asked.seed}
    if model == FASHN_MODEL:
        photo_type = asked.garment_photo_type or DEFAULT_GARMENT_PHOTO_TYPE
        if photo_type == "auto":  # tailor did not decide: upstream's default, or the parser-free one
            photo_type = "flat-lay" if settings.commercial else "model"
        segmentation_free = DEFAULT_SEGMENTATION_FREE if asked.segmentation_free is None else asked.segmentation_free
        return FashnRequest(
            person=person,
            garment=garment,
            category=category,
            garment_photo_type=photo_type,
            segmentation_free=segmentation_free,
            safety_check=settings.weave_safety_check,
            **options,
        )
    mask = storage.get(asked.mask_key) if asked.mask_key else None
    variant = next(v for v, n in CATVTON_VARIANT_MODELS.items() if n == model)
    if variant == "mask" and mask is None:
        raise BadRequest("model 'catvton-mask' needs a person mask (mask_key), got none", field="mask_key")
    return TryOnRequest(
        person=person,
        garment=garment,
        mask=mask,
        category=category,
        variant=variant,
        height=asked.height,
        width=asked.width,
        repaint=asked.repaint,
        safety_check=settings.weave_safety_check,
        **options,
    )


def sample_count(data: Mapping[str, Any]) -> int:
    """How many samples the job asked for (num_samples, at least one)."""
    return int(data.get("num_samples") or 1)


def sample_keys(data: Mapping[str, Any]) -> list[str]:
    """Where each sample of the job goes (the first is the job's one result key)."""
    image_format = data.get("output_format") or "png"
    return [result_key(data["user_id"], data["job_id"], i, image_format) for i in range(sample_count(data))]


def result_fields(keys: list[str]) -> dict[str, Any]:
    """The completion's result_key (and result_keys when there are several samples)."""
    return {"result_key": keys[0], "result_keys": keys} if len(keys) > 1 else {"result_key": keys[0]}


def json_safe(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata with every value JSON can carry (others as strings)."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in metadata.items()}


class JobCanceled(ClientError):
    """Every job of a running batch was canceled: the render stops at this step."""

    code = "canceled"
