"""The HTTP side of local storage: the routes its presigned URLs point at.

`PUT /files/<key>` and `GET /files/<key>` check the query signature; `POST /files` takes an
S3-style browser form (fields, then the file in a part named `file`). Bodies are streamed
to disk and cut off as soon as they pass the signed limit, so an oversized upload is
refused without being read in full and leaves nothing behind. Errors are JSON.
OPTIONS is left to Flask (and the gateway's CORS).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import IO

from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from shared.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, ProteusError
from shared.storage.base import validate_key
from shared.storage.local import LocalStorage, ObjectWriter

CHUNK = 64 * 1024
FIELD_LIMIT = 16 * 1024  # bytes per form field
MAX_PARTS = 16


def local_files_blueprint(storage: LocalStorage) -> Blueprint:
    """A Blueprint serving `storage`'s presigned URLs under /files."""
    bp = Blueprint("local_files", __name__)

    @bp.errorhandler(ProteusError)
    def _error(exc: ProteusError) -> tuple[Response, int]:
        return jsonify(exc.to_dict()), exc.status

    @bp.put("/files/<path:key>")
    def put_object(key: str) -> tuple[str, int, dict[str, str]]:
        validate_key(key)
        terms = storage.signer.check_url("PUT", key, request.args)
        sent = (request.headers.get("Content-Type") or "").strip()
        if sent != terms.content_type:
            raise Forbidden(f"Content-Type {sent!r} is not the signed {terms.content_type!r}", field="Content-Type")
        _refuse_declared_oversize(terms.max_bytes)
        with storage.open_writer(key, terms.content_type, max_bytes=terms.max_bytes) as writer:
            _copy(request.stream, writer)
            if writer.size < terms.min_bytes:
                raise BadRequest(f"PUT /files/{key}: the body is empty")
        return "", 200, {"ETag": writer.etag}

    @bp.get("/files/<path:key>")
    def get_object(key: str) -> Response:
        validate_key(key)
        storage.signer.check_url("GET", key, request.args)
        info = storage.head(key)
        if info is None:
            raise NotFound(f"no object stored under key {key!r}", field="key")
        try:
            response = send_file(storage.path_for(key), mimetype=info.content_type, conditional=True)
        except FileNotFoundError:
            raise NotFound(f"no object stored under key {key!r}", field="key") from None
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.cache_control.private = True
        response.cache_control.max_age = max(0, int(request.args["expires"]) - int(time.time()))
        return response

    @bp.post("/files")
    def post_object() -> tuple[str, int, dict[str, str]]:
        boundary = request.mimetype_params.get("boundary")
        if request.mimetype != "multipart/form-data" or not boundary:
            raise BadRequest("POST /files takes a multipart/form-data body", field="Content-Type")
        try:
            etag = _receive_form(storage, request.stream, boundary.encode())
        except RequestEntityTooLarge:
            raise PayloadTooLarge(f"the form has more than {MAX_PARTS} parts") from None
        except ValueError as exc:
            if isinstance(exc, ProteusError):
                raise
            raise BadRequest(f"POST /files: malformed multipart body ({exc})") from None
        return "", 204, {"ETag": etag}

    return bp


def _refuse_declared_oversize(max_bytes: int) -> None:
    """413 at once when Content-Length already says the body is too big."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"the body is {length} bytes, over the signed limit of {max_bytes}")


def _copy(stream: IO[bytes], writer: ObjectWriter) -> None:
    while chunk := stream.read(CHUNK):
        writer.write(chunk)


def _receive_form(storage: LocalStorage, stream: IO[bytes], boundary: bytes) -> str:
    """Parse the form as it arrives; the policy is checked before the first file byte is kept."""
    decoder = MultipartDecoder(boundary, max_parts=MAX_PARTS)  # field sizes are checked below
    fields: dict[str, str] = {}
    with ExitStack() as stack:
        writer: ObjectWriter | None = None
        part: Field | File | None = None
        buffer = bytearray()
        min_bytes, file_done, ended = 1, False, False
        while not ended:
            chunk = stream.read(CHUNK)
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, NeedData | Epilogue):
                if isinstance(event, Field):
                    part, buffer = event, bytearray()
                elif isinstance(event, File):
                    if event.name != "file" or writer is not None:
                        raise BadRequest(f"POST /files: unexpected file part {event.name!r} (one part named 'file')")
                    terms = storage.signer.check_policy(fields)
                    validate_key(terms.key)
                    min_bytes = terms.min_bytes
                    writer = stack.enter_context(
                        storage.open_writer(terms.key, terms.content_type, max_bytes=terms.max_bytes)
                    )
                    part = event
                elif isinstance(event, Data):
                    if isinstance(part, File) and writer is not None and not file_done:
                        writer.write(event.data)
                        file_done = not event.more_data
                    elif isinstance(part, Field):
                        buffer += event.data
                        if len(buffer) > FIELD_LIMIT:
                            raise PayloadTooLarge(f"form field {part.name!r} is over {FIELD_LIMIT} bytes")
                        if not event.more_data and writer is None:  # fields after the file are ignored
                            fields[part.name] = buffer.decode("utf-8", "replace")
                event = decoder.next_event()
            ended = isinstance(event, Epilogue) or not chunk
        if writer is None or not file_done:
            raise BadRequest("POST /files: the form has no complete part named 'file'")
        if writer.size < min_bytes:
            raise BadRequest(f"POST /files: the file is {writer.size} bytes, under the policy's {min_bytes}")
        return writer.etag
