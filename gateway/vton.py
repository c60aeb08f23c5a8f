"""Try-ons: GET/POST /vton, PUT/DELETE /vton/<id>. A person sees and changes only their own.

`GET /vton` answers a bare JSON array, newest first: every try-on of the caller (as the
original did), or with `limit` (1..100) and/or `before` (an ISO 8601 time, or the id of one
of the caller's try-ons) one page at a time (`limit` alone or with `before`: at most `limit`,
`before` alone: 50).
A `user_id` query parameter is accepted for the original frontend: it can only ever mean
the caller, so any other id answers an empty list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import Select, and_, bindparam, delete, or_, select
from sqlalchemy.orm import aliased

from gateway import auth, resources
from gateway.serializers import last_runs, tryon_to_dict
from gateway.validation import check_id, parse_body, show
from shared.contracts.rest import HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, TryOnCreate, TryOnUpdate
from shared.db.hot_reads import fetch_all
from shared.db.models import Job, TryOn
from shared.errors import BadRequest, NotFound
from shared.timestamps import parse_timestamp

log = logging.getLogger("proteus.gateway")
bp = Blueprint("vton", __name__, url_prefix="/vton")

KEY_COLUMNS = ("user_snap", "uncleaned_outfit", "cleaned_outfit", "outfit_try_on", "person_mask")

LIST_COLUMNS = tuple(getattr(TryOn, attr.key) for attr in TryOn.__mapper__.column_attrs)


# The newest try-on job of each listed try-on (the model, seed and samples its card shows),
# joined into the history query: one statement per page instead of two.
_RUN = aliased(Job, name="run")
RUN_COLUMNS = (
    _RUN.id.label("run_id"),
    _RUN.model.label("run_model"),
    _RUN.seed.label("run_seed"),
    _RUN.params.label("run_params"),
    _RUN.result_keys.label("run_result_keys"),
)


@dataclass(frozen=True, slots=True)
class LastRun:
    """What tryon_to_dict reads of a try-on's newest job."""

    model: str | None
    seed: int | None
    params: dict[str, Any] | None
    result_keys: list[str] | None


def _history_select() -> Select[Any]:
    """The caller's try-ons (filtered by the caller), each with its newest try-on job's columns."""
    newest = aliased(Job, name="newest")
    newest_id = (
        select(newest.id)
        .where(newest.vton_id == TryOn.id, newest.job_type == "try_on")
        .order_by(newest.created_at.desc(), newest.id.desc())
        .limit(1)
        .correlate(TryOn)
        .scalar_subquery()
    )
    return select(*LIST_COLUMNS, *RUN_COLUMNS).outerjoin(_RUN, _RUN.id == newest_id)


@cache
def _history_query(limit: int | None) -> Select[Any]:
    """The caller's try-ons, newest first (`user_id` bound at execution): built once per limit,
    since building the statement cost more than running it."""
    query = (
        _history_select()
        .where(TryOn.user_id == bindparam("user_id"), auth.live_token_clause())
        .order_by(TryOn.created_at.desc(), TryOn.id.desc())
    )
    return query if limit is None else query.limit(limit)


def _last_run(row: Any) -> LastRun | None:
    if row.run_id is None:
        return None
    return LastRun(row.run_model, row.run_seed, row.run_params, row.run_result_keys)


def owned_tryon(vton_id: Any) -> TryOn:
    """The caller's try-on `vton_id`; 404 if there is none or it is someone else's."""
    check_id(vton_id, "vton")
    tryon = resources.db().get(TryOn, vton_id)
    if tryon is None or tryon.user_id != auth.current_user().id:
        raise NotFound(f"vton {vton_id!r} does not exist", field="vton_id")
    return tryon


def _limit() -> int | None:
    """The page size; None (every row) when neither `limit` nor `before` is given."""
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return HISTORY_DEFAULT_LIMIT if request.args.get("before") else None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= HISTORY_MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {HISTORY_MAX_LIMIT}, got {show(raw)}", field="limit")
    return value


def _before_clause(raw: str, user_id: str) -> Any:
    """Rows older than an ISO time, or than one of the caller's try-ons (by id)."""
    try:
        when = parse_timestamp(raw.replace(" ", "+"), default_tz=True)  # '+' in a query arrives as ' '
    except ValueError:
        when = None
    if when is not None:
        return TryOn.created_at < when
    anchor = resources.db().get(TryOn, raw) if len(raw) <= 64 else None
    if anchor is None or anchor.user_id != user_id:
        raise BadRequest(
            f"before must be an ISO 8601 time or the id of one of your try-ons, got {show(raw)}", field="before"
        )
    return or_(
        TryOn.created_at < anchor.created_at,
        and_(TryOn.created_at == anchor.created_at, TryOn.id < anchor.id),
    )


@bp.get("")
@auth.login_required_by_id
def list_tryons() -> Response:
    user_id = auth.current_user_id()
    limit = _limit()
    asked_for = request.args.get("user_id")
    if asked_for is not None and asked_for != user_id:
        return jsonify([])  # another person's list is not visible: as if empty
    # Plain rows, not ORM objects: the list is only shown, and loading 20 objects into the
    # session's identity map cost more than the query. A Core statement built once, run on
    # the request's read connection, skips the ORM's per-query work as well (on PostgreSQL it
    # runs on the driver's cursor: shared/db/hot_reads.py); it also checks that the caller's
    # token is live (login_required_by_id), so a page costs one query.
    before = request.args.get("before")
    rows: Sequence[Any]
    if before:
        query = _history_select().where(TryOn.user_id == user_id, _before_clause(before, user_id))
        query = query.order_by(TryOn.created_at.desc(), TryOn.id.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = list(resources.read_connection().execute(query))
    else:
        rows = fetch_all(resources.read_connection(), _history_query(limit), auth.live_token_params())
        if rows:
            auth.token_proven_live()  # the query's clause read the token version: no second query
    return jsonify([tryon_to_dict(row, _last_run(row)) for row in rows])


@bp.post("")
@auth.login_required
def create_tryon() -> tuple[Response, int]:
    user_id = auth.current_user().id
    body = parse_body(TryOnCreate, user_id=user_id)
    tryon = TryOn(
        user_id=user_id,
        user_snap=body.user_snap,
        uncleaned_outfit=body.uncleaned_outfit,
        category=body.category,
        category_requested=body.category,
    )
    session = resources.db()
    session.add(tryon)
    session.commit()
    return jsonify(tryon_to_dict(tryon)), 201


@bp.put("/<vton_id>")
@auth.login_required
def update_tryon(vton_id: str) -> Response:
    tryon = owned_tryon(vton_id)
    body = parse_body(TryOnUpdate, user_id=auth.current_user().id)
    for column in body.model_fields_set:
        setattr(tryon, column, getattr(body, column))
        if column == "category":
            tryon.category_requested = body.category
    resources.db().commit()
    return jsonify(tryon_to_dict(tryon, last_runs(resources.db(), [tryon.id]).get(tryon.id)))


@bp.delete("/<vton_id>")
@auth.login_required
def delete_tryon(vton_id: str) -> Response:
    """Delete the try-on, its jobs, its results and the inputs no other try-on of the user uses."""
    tryon = owned_tryon(vton_id)
    user_id = tryon.user_id
    session = resources.db()
    doomed = {getattr(tryon, c) for c in KEY_COLUMNS} | {
        key for key in session.scalars(select(Job.result_key).where(Job.vton_id == tryon.id)) if key
    }
    others = session.scalars(select(TryOn).where(TryOn.user_id == user_id, TryOn.id != tryon.id))
    still_used = {getattr(row, c) for row in others for c in KEY_COLUMNS}
    # Tailor's cut-outs and masks are a per-garment cache (GarmentAsset): they stay.
    to_delete = sorted(
        key
        for key in doomed - still_used
        if key and (key.startswith(f"uploads/{user_id}/") or key.startswith(f"outputs/weaver/{user_id}/"))
    )
    session.execute(delete(Job).where(Job.vton_id == tryon.id))
    session.delete(tryon)
    session.commit()
    storage = resources.storage()
    for key in to_delete:
        try:
            storage.delete(key)
        except Exception:  # the row is gone; a leftover object is only logged
            log.warning("could not delete object %s of deleted vton %s", key, vton_id, exc_info=True)
    return Response(status=204)
