"""The server-to-server API, FASHN-compatible: POST /v1/run, GET /v1/status/<id>,
POST /v1/cancel/<id>, GET /v1/webhooks/deliveries. Authenticated by API keys only.

A run stores its try-on and job and publishes the same `tryon.requested` event as the web
page's POST /jobs/weaver; the job's params keep what only the API needs under `api`
(model name, output format, return_base64, webhook URL). Errors answer FASHN's shape
`{"error": <name>, "message"}` plus our `code` and `field`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from gateway import resources
from gateway.apikeys import api_key_required
from gateway.errors import error_response
from gateway.jobs import _check_model, _idempotency_key
from gateway.v1.inputs import resolve_image
from gateway.validation import check_id, json_body, show
from shared import event_types as t
from shared import jobs
from shared.contracts.tryon import CATVTON_VARIANT_MODELS, api_mode
from shared.contracts.tryon import MODELS as PROTEUS_MODELS
from shared.contracts.v1 import (
    CATEGORY,
    CancelResponse,
    RunResponse,
    TryOnInputs,
    check_webhook_url,
    parse_run,
)
from shared.db.models import Job, TryOn, User, WebhookDelivery
from shared.errors import (
    BadRequest,
    ClientError,
    Conflict,
    DependencyUnavailable,
    NotFound,
    ProteusError,
)
from shared.events import make_event, source_for
from shared.notifications import add_to_outbox, completion_message
from shared.predictions import STATUS_OF_JOB, is_prediction, status_body
from shared.streams.publish import publish

log = logging.getLogger("proteus.gateway")
bp = Blueprint("v1", __name__, url_prefix="/v1")
SOURCE = source_for("gateway")
CANCEL_TTL_S = 24 * 3600
FASHN_ERRORS = {
    400: "BadRequest",
    401: "UnauthorizedAccess",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "BadRequest",
    415: "BadRequest",
    429: "RateLimitExceeded",
    503: "ServiceUnavailable",
}
MAX_DELIVERIES = 100


@bp.errorhandler(ProteusError)
def _error(error: ProteusError) -> Response:
    response = error_response(error)
    body = error.to_dict()
    body["error"] = FASHN_ERRORS.get(error.status, "InternalServerError")
    response.set_data(jsonify(body).get_data())
    return response


def current_user() -> User:
    from flask import g

    return g.user  # type: ignore[no-any-return]


def _owned_prediction(prediction_id: str) -> Job:
    check_id(prediction_id, "prediction")
    job = resources.db().get(Job, prediction_id)
    if job is None or job.user_id != current_user().id or not is_prediction(job):
        raise NotFound(f"prediction {show(prediction_id)} does not exist", field="id")
    return job


def max_run_body(max_upload_bytes: int) -> int:
    """A run's JSON may carry both images as base64 data: URLs (4/3 of their bytes each)."""
    return 2 * (max_upload_bytes * 4 // 3 + 1024) + 64 * 1024


@bp.before_request
def _allow_inline_images() -> None:
    if request.endpoint == "v1.run":
        request.max_content_length = max_run_body(resources.settings().max_upload_bytes)


@bp.post("/run")
@api_key_required
@resources.write_lock_later  # fetching and checking the images comes first
def run() -> Response:
    body = json_body(max_run_body(resources.settings().max_upload_bytes))
    run_request = parse_run(body)
    user_id = current_user().id
    session = resources.db()
    key = _idempotency_key()
    if key is not None:
        existing = session.scalars(select(Job).where(Job.user_id == user_id, Job.idempotency_key == key)).one_or_none()
        if existing is not None:
            return jsonify(RunResponse(id=existing.id).model_dump())
    webhook_url = _webhook_url(run_request.webhook_url)
    inputs = run_request.inputs
    person = resolve_image(inputs.model_image, "inputs.model_image", user_id)
    garment = resolve_image(inputs.garment_image, "inputs.garment_image", user_id)
    category = CATEGORY[inputs.category]
    model = _model(run_request.model_name, inputs, category)
    params: dict[str, Any] = {
        "person_key": person,
        "garment_key": garment,
        "category": category,
        "model": model,
        **api_mode(model, inputs.mode),
        "num_samples": inputs.num_samples,
        "output_format": inputs.output_format,
    }
    if PROTEUS_MODELS[model].family == "catvton":
        params["variant"] = next(v for v, name in CATVTON_VARIANT_MODELS.items() if name == model)
    else:
        params |= {"garment_photo_type": inputs.garment_photo_type, "segmentation_free": inputs.segmentation_free}
    if inputs.seed is not None:
        params["seed"] = inputs.seed
    api = {
        "model_name": run_request.model_name,
        "output_format": inputs.output_format,
        "return_base64": inputs.return_base64,
        "webhook_url": webhook_url,
        "mode": inputs.mode,
        "moderation_level": inputs.moderation_level,
        "garment_photo_type": inputs.garment_photo_type,
    }
    resources.begin_write(session)
    tryon = TryOn(
        user_id=user_id, user_snap=person, uncleaned_outfit=garment, status="queued", category_requested=category
    )
    session.add(tryon)
    session.flush()
    job, created = jobs.get_or_create_job(
        session,
        user_id=user_id,
        vton_id=tryon.id,
        job_type="try_on",
        params={**params, "api": api},
        idempotency_key=key,
    )
    if not created:  # a concurrent request with the same Idempotency-Key won
        winner = job.id
        session.rollback()
        return jsonify(RunResponse(id=winner).model_dump())
    session.commit()
    data = {"job_id": job.id, "user_id": user_id, "vton_id": tryon.id, **params}
    try:
        publish(
            resources.redis(),
            make_event(t.TRYON_REQUESTED, data, source=SOURCE, subject=job.id, user_id=user_id),
            prefix=resources.settings().redis_key_prefix,
        )
    except Exception as exc:
        log.warning("could not publish the run %s: %r", job.id, exc)
        jobs.fail_job(session, job.id, error="the run could not be queued; try again", code="dependency_unavailable")
        session.commit()
        if isinstance(exc, (DependencyUnavailable, ClientError)):
            raise
        raise DependencyUnavailable("the run could not be queued; try again") from exc
    return jsonify(RunResponse(id=job.id).model_dump())


def _model(model_name: str, inputs: TryOnInputs, category: str) -> str:
    """The model a run uses: a Proteus name as given; a FASHN name is the deployment's default
    (a CatVTON default in the variant segmentation_free picks). Refused when not served here."""
    settings = resources.settings()
    explicit = model_name if model_name in PROTEUS_MODELS else None
    variant = None
    if explicit is None and PROTEUS_MODELS[settings.weave_default_model].family == "catvton":
        variant = "maskfree" if inputs.segmentation_free else "mask"
    try:
        return _check_model(
            {
                "model": explicit,
                "variant": variant,
                "mask_key": None,
                "category": category,
                "garment_photo_type": inputs.garment_photo_type,
                "segmentation_free": inputs.segmentation_free,
            }
        )
    except ClientError as exc:
        if exc.field == "model":
            exc.field = "model_name"
        elif exc.field in ("garment_photo_type", "segmentation_free", "category"):
            exc.field = f"inputs.{exc.field}"
        raise


def _webhook_url(in_body: str | None) -> str | None:
    """The run's webhook URL: FASHN sends it as the query parameter webhook_url; the body may carry it too."""
    in_query = request.args.get("webhook_url")
    if in_query is None:
        return in_body
    check_webhook_url(in_query, "webhook_url")
    if in_body is not None and in_body != in_query:
        raise BadRequest(
            f"webhook_url is given twice with different values: {show(in_query)} in the query, "
            f"{show(in_body)} in the body",
            field="webhook_url",
        )
    return in_query


@bp.get("/status/<id>")
@api_key_required
def status(id: str) -> Response:
    job = _owned_prediction(id)
    return jsonify(status_body(job, resources.storage(), resources.settings()))


@bp.post("/cancel/<id>")
@api_key_required
def cancel(id: str) -> Response:
    job = _owned_prediction(id)
    session = resources.db()
    if not jobs.cancel_job(session, job.id):
        session.refresh(job)
        raise Conflict(
            f"prediction {job.id} is already {STATUS_OF_JOB[job.status]}; only a queued or running one can be canceled",
            field="id",
        )
    # The owner's sockets are told as for any ending: the completion goes to the outbox with the
    # change, and notify (on job.canceled) or the reconciler publishes it.
    add_to_outbox(
        session,
        completion_message(
            job_id=job.id,
            job_type=job.job_type,
            status="failed",
            user_id=job.user_id,
            vton_id=job.vton_id,
            result_key=None,
            error=jobs.CANCELED_MESSAGE,
        ),
    )
    session.commit()
    settings = resources.settings()
    redis = resources.redis()
    redis.set(f"{settings.redis_key_prefix}{jobs.CANCEL_FLAG}{job.id}", "1", ex=CANCEL_TTL_S)
    publish(
        redis,
        make_event(
            t.JOB_CANCELED,
            {"job_id": job.id, "user_id": job.user_id, "vton_id": job.vton_id},
            source=SOURCE,
            subject=job.id,
            user_id=job.user_id,
        ),
        prefix=settings.redis_key_prefix,
    )
    return jsonify(CancelResponse(id=job.id, status="canceled").model_dump())


@bp.get("/webhooks/deliveries")
@api_key_required
def deliveries() -> Response:
    from shared.timestamps import iso

    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DELIVERIES:
        raise ClientError(f"limit must be an integer from 1 to {MAX_DELIVERIES}, got {show(raw)}", field="limit")
    rows = (
        resources.db()
        .scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.user_id == current_user().id)
            .order_by(WebhookDelivery.created_at.desc())
            .limit(int(raw))
        )
        .all()
    )
    return jsonify(
        {
            "deliveries": [
                {
                    "id": d.id,
                    "prediction_id": d.job_id,
                    "url": d.url,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_status_code": d.last_status_code,
                    "last_error": d.last_error,
                    "created_at": iso(d.created_at),
                    "delivered_at": iso(d.delivered_at),
                }
                for d in rows
            ]
        }
    )
