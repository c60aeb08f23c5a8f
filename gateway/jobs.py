"""Jobs: POST /jobs/weaver, POST /jobs/tailor (202, queued, one event published), GET /jobs/<id>.

The job row is stored first (with the try-on set to queued), then the request event is
published; an `Idempotency-Key` header makes a retry answer the same job and publish
nothing new. Existence and size of the objects are checked by enqueue / tailor, which
fail the job (and tell the user's sockets) when an object is missing or not an image.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from gateway import auth, resources
from gateway.limits import rate_limited
from gateway.serializers import job_to_dict
from gateway.validation import check_id, parse_body, show
from gateway.vton import owned_tryon
from shared import event_types as t
from shared import jobs
from shared.contracts.fields import IDEMPOTENCY_KEY_PATTERN
from shared.contracts.rest import TailorJobRequest, WeaveJobRequest
from shared.contracts.tryon import MODELS, parser_free, preset_for, resolve_model
from shared.db.models import Job, TryOn
from shared.errors import (
    BadRequest,
    ClientError,
    Conflict,
    DependencyUnavailable,
    LicenceRestricted,
    ModelNotLoaded,
    NotFound,
)
from shared.events import make_event, source_for
from shared.streams.publish import publish

log = logging.getLogger("proteus.gateway")
bp = Blueprint("jobs", __name__, url_prefix="/jobs")

SOURCE = source_for("gateway")
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def _idempotency_key() -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise BadRequest(
            f"Idempotency-Key must be 1 to 200 printable ASCII characters without spaces, got {show(value)}",
            field="Idempotency-Key",
        )
    return value


def _weave_params(body: WeaveJobRequest, default_category: str | None) -> dict[str, Any]:
    """tryon.requested's settings: the body's, checked against the model they name, with its preset."""
    params = body.params(default_category)
    model = _check_model(params)
    spec = MODELS[model]
    if body.preset is not None:
        for name, value in preset_for(model, body.preset).items():
            params.setdefault(name, value)
    for name, (low, high) in (("steps", spec.steps_range), ("guidance", spec.guidance_range)):
        given = params.get(name)
        if given is not None and not low <= given <= high:
            raise BadRequest(
                f"{name} must be from {low:g} to {high:g} for model {model!r}, got {show(given)}", field=name
            )
    return params


def _check_model(params: dict[str, Any]) -> str:
    """The model the try-on will run; refused here when this deployment does not serve it, or
    (COMMERCIAL) when the request needs a non-commercial component."""
    settings = resources.settings()
    model = resolve_model(
        params.get("model"), params.get("variant"), bool(params.get("mask_key")), settings.weave_default_model
    )
    if model not in settings.weave_models:
        raise ModelNotLoaded(
            f"model {model!r} is not served here (served: {', '.join(settings.weave_models)})", field="model"
        )
    if settings.commercial:
        if not parser_free(model, params.get("garment_photo_type"), params.get("segmentation_free")):
            field = "segmentation_free" if params.get("segmentation_free") is False else "garment_photo_type"
            raise LicenceRestricted(
                f"this deployment runs only commercially licensed components; {field} "
                f"{show(params.get(field))} needs the FASHN human parser (NVIDIA SegFormer licence, non-commercial). "
                f"Send a product-shot garment with garment_photo_type 'flat-lay' and segmentation_free true",
                field=field,
            )
        if params["category"] == "auto":
            raise LicenceRestricted(
                "category 'auto' needs tailor's garment parser (NVIDIA SegFormer licence, non-commercial), which "
                "this commercial deployment does not run; send category upper, lower or overall",
                field="category",
            )
    return model


NOT_SENT = "not queued yet: the queue was unavailable when the job was created"


def _start(job_type: str, event_type: str, tryon: TryOn, params: dict[str, Any]) -> tuple[Response, int]:
    """Store the job (or find the one with this Idempotency-Key), publish its event if new."""
    user_id = auth.current_user().id
    key = _idempotency_key()
    if key is not None and event_type == t.TRYON_REQUESTED:  # tailor.requested has no such field
        params = {**params, "idempotency_key": key}
    session = resources.db()
    job, created = jobs.get_or_create_job(
        session, user_id=user_id, vton_id=tryon.id, job_type=job_type, params=params, idempotency_key=key
    )
    if not created and (job.vton_id != tryon.id or job.job_type != job_type or job.params != params):
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different request (job {job.id})",
            field="Idempotency-Key",
        )
    if created:
        if job_type == "try_on":
            tryon.category_requested = params["category"]
        tryon.status = "queued"
        tryon.error = None
        tryon.progress_step = None
        tryon.progress_steps = None
    session.commit()
    # A retry (same Idempotency-Key) of a request whose event could not be published sends it now.
    resend = not created and job.status == "queued" and job.error == NOT_SENT
    if created or resend:
        data = {"job_id": job.id, "user_id": user_id, "vton_id": tryon.id, **params}
        try:
            publish(
                resources.redis(),
                make_event(event_type, data, source=SOURCE, subject=job.id, user_id=user_id),
                prefix=resources.settings().redis_key_prefix,
            )
        except Exception as exc:
            log.warning("could not publish %s for job %s: %r", event_type, job.id, exc)
            if isinstance(exc, ClientError):
                jobs.fail_job(session, job.id, error=f"the job could not be queued: {exc.message}")
                session.commit()
                raise
            # Transient: the job stays queued, marked, for a retry with the same Idempotency-Key
            # (or the reconciler) to send; it is not failed for an outage.
            job.error = NOT_SENT
            session.commit()
            if isinstance(exc, DependencyUnavailable):
                raise DependencyUnavailable(
                    f"{exc.message}; the job was not queued yet: try again with the same Idempotency-Key"
                ) from exc
            raise DependencyUnavailable("the job could not be queued; try again") from exc
        if resend:
            job.error = None
            session.commit()
    return jsonify({"jobId": job.id, "job_id": job.id, "vton_id": tryon.id, "status": job.status}), 202


@bp.post("/weaver")
@rate_limited
@auth.login_required
def start_weave() -> tuple[Response, int]:
    body = parse_body(WeaveJobRequest, user_id=auth.current_user().id)
    tryon = owned_tryon(body.vton_id)
    return _start("try_on", t.TRYON_REQUESTED, tryon, _weave_params(body, tryon.category_requested or tryon.category))


@bp.post("/tailor")
@rate_limited
@auth.login_required
def start_tailor() -> tuple[Response, int]:
    body = parse_body(TailorJobRequest, user_id=auth.current_user().id)
    tryon = owned_tryon(body.vton_id)
    return _start("tailor", t.TAILOR_REQUESTED, tryon, body.model_dump(mode="json", exclude={"vton_id"}))


@bp.get("/<job_id>")
@auth.login_required
def get_job(job_id: str) -> Response:
    check_id(job_id, "job")
    job = resources.db().get(Job, job_id)
    if job is None or job.user_id != auth.current_user().id:
        raise NotFound(f"job {job_id!r} does not exist", field="job_id")
    return jsonify(job_to_dict(job))
